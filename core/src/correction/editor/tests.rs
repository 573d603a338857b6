use super::*;
use crate::correction::TeachingFocus;
use crate::volume::IDENTITY;

fn grid(dims: [usize; 3], spacing: [f64; 3]) -> Volume<u8> {
    let mut affine = IDENTITY;
    for axis in 0..3 {
        affine[axis][axis] = spacing[axis];
    }
    Volume::filled(dims, affine, 0)
}

fn axial(index: usize) -> SlicePlane {
    SlicePlane {
        normal_axis: 2,
        index,
    }
}

fn count(labels: &Volume<u8>, label: u8) -> usize {
    labels.data.iter().filter(|&&value| value == label).count()
}

#[test]
fn the_brush_is_round_in_millimetres_on_an_anisotropic_grid() {
    // 1 mm along x, 2 mm along y: a 6 mm brush reaches 3 voxels along x and 1 along y.
    let mut labels = grid([20, 20, 5], [1.0, 2.0, 3.0]);
    let mut corrections = Corrections::new(&labels);
    corrections.begin_stroke(&labels, axial(2)).unwrap();
    corrections.brush(&mut labels, [10, 10, 0], 6.0, 2).unwrap();
    assert_eq!(corrections.end_stroke(&labels), count(&labels, 2));
    let painted: Vec<[usize; 3]> = (0..labels.data.len())
        .filter(|&index| labels.data[index] == 2)
        .map(|index| [index % 20, (index / 20) % 20, index / 400])
        .collect();
    assert!(
        painted.iter().all(|voxel| voxel[2] == 2),
        "only the stroke's slice"
    );
    for voxel in &painted {
        let dx = voxel[0] as f64 - 10.0;
        let dy = 2.0 * (voxel[1] as f64 - 10.0);
        assert!(
            (dx * dx + dy * dy).sqrt() <= 3.0 + 1e-9,
            "{voxel:?} outside the disc"
        );
    }
    // Row y = 10: x 7..=13; rows y = 9 and 11 (2 mm off): |dx| <= sqrt(5), x 8..=12.
    assert_eq!(painted.len(), 7 + 2 * 5);
    // The smallest brush still paints the voxel under the pointer.
    corrections.begin_stroke(&labels, axial(0)).unwrap();
    assert_eq!(
        corrections.brush(&mut labels, [0, 0, 0], 0.1, 1).unwrap(),
        1
    );
    assert_eq!(labels.get(0, 0, 0), 1);
}

#[test]
fn a_dragged_brush_paints_without_gaps_and_the_eraser_paints_zero() {
    let mut labels = grid([30, 30, 3], [1.0; 3]);
    let mut corrections = Corrections::new(&labels);
    corrections.begin_stroke(&labels, axial(1)).unwrap();
    corrections
        .brush_line(&mut labels, [2, 2, 1], [27, 20, 1], 1.0, 4)
        .unwrap();
    corrections.end_stroke(&labels);
    // One voxel per step along the longer axis: 26 columns, each painted once.
    for x in 2..=27 {
        assert!(
            (0..30).any(|y| labels.get(x, y, 1) == 4),
            "gap at column {x}"
        );
    }
    corrections.begin_stroke(&labels, axial(1)).unwrap();
    corrections
        .brush_line(&mut labels, [0, 0, 1], [29, 29, 1], 100.0, 0)
        .unwrap();
    corrections.end_stroke(&labels);
    assert_eq!(count(&labels, 4), 0, "the eraser clears the slice");
    assert_eq!(
        corrections.marked_count(),
        30 * 30,
        "erased voxels are corrections too"
    );
}

#[test]
fn undo_and_redo_restore_labels_and_marks_over_thirty_strokes() {
    let mut labels = grid([40, 40, 2], [1.0; 3]);
    labels.data[5] = 2; // a model label under the first stroke
    let mut corrections = Corrections::new(&labels);
    let mut states = vec![(labels.data.clone(), corrections.marks().to_vec())];
    for stroke in 0..30 {
        corrections
            .begin_stroke(&labels, axial(stroke % 2))
            .unwrap();
        let centre = [stroke, stroke, 0];
        corrections
            .brush(&mut labels, centre, 3.0, 1 + (stroke % 4) as u8)
            .unwrap();
        corrections.end_stroke(&labels);
        states.push((labels.data.clone(), corrections.marks().to_vec()));
    }
    assert_eq!(corrections.undo_depth(), 30);
    for expected in states.iter().rev().skip(1) {
        assert!(corrections.undo(&mut labels).unwrap());
        assert_eq!(
            (&labels.data, &corrections.marks().to_vec()),
            (&expected.0, &expected.1)
        );
    }
    assert!(
        !corrections.undo(&mut labels).unwrap(),
        "nothing left to undo"
    );
    assert_eq!(labels.data[5], 2, "the model's label is back");
    for expected in states.iter().skip(1) {
        assert!(corrections.redo(&mut labels).unwrap());
        assert_eq!(
            (&labels.data, &corrections.marks().to_vec()),
            (&expected.0, &expected.1)
        );
    }
    assert!(!corrections.redo(&mut labels).unwrap());
    // A new stroke after an undo forgets what could be redone.
    corrections.undo(&mut labels).unwrap();
    corrections.begin_stroke(&labels, axial(0)).unwrap();
    corrections.brush(&mut labels, [39, 0, 0], 1.0, 3).unwrap();
    corrections.end_stroke(&labels);
    assert_eq!(corrections.redo_depth(), 0);
}

#[test]
fn a_stroke_that_changes_nothing_is_not_an_undo_step() {
    let mut labels = grid([8, 8, 1], [1.0; 3]);
    let mut corrections = Corrections::new(&labels);
    corrections.begin_stroke(&labels, axial(0)).unwrap();
    corrections.brush(&mut labels, [3, 3, 0], 1.0, 2).unwrap();
    assert_eq!(corrections.end_stroke(&labels), 1);
    corrections.begin_stroke(&labels, axial(0)).unwrap();
    corrections.brush(&mut labels, [3, 3, 0], 1.0, 2).unwrap();
    assert_eq!(
        corrections.end_stroke(&labels),
        0,
        "same label, already marked"
    );
    assert_eq!(corrections.undo_depth(), 1);
}

/// A slice with two label-2 blobs split by a label-1 wall, and a bright column inside the
/// left blob.
fn fill_scene() -> (Volume<u8>, Volume<f32>) {
    let mut labels = grid([12, 6, 3], [1.0; 3]);
    let mut image = Volume::filled([12, 6, 3], IDENTITY, 100.0f32);
    for z in 0..3 {
        for y in 0..6 {
            for x in 0..12 {
                labels.set(x, y, z, if x == 6 { 1 } else { 2 });
            }
            image.set(3, y, z, 900.0);
        }
    }
    (labels, image)
}

#[test]
fn the_fill_stays_inside_the_seed_label_the_intensity_window_and_the_slice() {
    let (mut labels, image) = fill_scene();
    let mut corrections = Corrections::new(&labels);
    corrections.begin_stroke(&labels, axial(1)).unwrap();
    let filled = corrections
        .fill(&mut labels, &image, [0, 0, 1], 4, [50.0, 200.0])
        .unwrap();
    corrections.end_stroke(&labels);
    // Columns 0..=2 only: the bright column 3 stops it, the wall at 6 is never reached.
    assert_eq!(filled, 3 * 6);
    for y in 0..6 {
        for x in 0..12 {
            let expected = if x < 3 {
                4
            } else if x == 6 {
                1
            } else {
                2
            };
            assert_eq!(labels.get(x, y, 1), expected, "({x}, {y})");
            assert_eq!(
                labels.get(x, y, 0),
                if x == 6 { 1 } else { 2 },
                "another slice"
            );
        }
    }
    // A wide window crosses the bright column but not the wall of another label.
    corrections.begin_stroke(&labels, axial(1)).unwrap();
    let filled = corrections
        .fill(&mut labels, &image, [4, 0, 1], 4, [0.0, 1000.0])
        .unwrap();
    assert_eq!(filled, 3 * 6, "columns 3..=5");
    // A seed outside the window fills nothing.
    assert_eq!(
        corrections
            .fill(&mut labels, &image, [9, 0, 1], 4, [500.0, 1000.0])
            .unwrap(),
        0
    );
    corrections.end_stroke(&labels);
    assert!(corrections.undo(&mut labels).unwrap());
    assert_eq!(labels.get(4, 0, 1), 2);
}

#[test]
fn painted_slices_follow_the_marks_and_give_the_teaching_weights() {
    let mut labels = grid([6, 5, 4], [1.0; 3]);
    let mut corrections = Corrections::new(&labels);
    corrections.begin_stroke(&labels, axial(3)).unwrap();
    corrections.brush(&mut labels, [1, 1, 0], 1.0, 2).unwrap();
    corrections.end_stroke(&labels);
    let coronal = SlicePlane {
        normal_axis: 1,
        index: 4,
    };
    corrections.begin_stroke(&labels, coronal).unwrap();
    corrections.brush(&mut labels, [5, 0, 0], 1.0, 1).unwrap();
    corrections.end_stroke(&labels);
    let slices: Vec<SlicePlane> = corrections.painted_slices().into_iter().collect();
    assert_eq!(slices, vec![coronal, axial(3)]);
    let classes = TeachingFocus::CorrectedSlices.weight_classes(&corrections, labels.dims);
    let class_at = |x, y, z| classes[labels.index(x, y, z)];
    assert_eq!(class_at(1, 1, 3), 2, "corrected");
    assert_eq!(class_at(4, 2, 3), 1, "reviewed: on a painted slice");
    assert_eq!(
        class_at(0, 4, 1),
        1,
        "reviewed: on the painted coronal slice"
    );
    assert_eq!(class_at(0, 0, 0), 0, "elsewhere: ignored");
    let reviewed = classes.iter().filter(|&&class| class > 0).count();
    assert_eq!(reviewed, 6 * 5 + 6 * 4 - 6, "two slices sharing one row");
    let up = TeachingFocus::UpWeighted.weight_classes(&corrections, labels.dims);
    assert_eq!(up.iter().filter(|&&class| class == 2).count(), 2);
    assert_eq!(up.iter().filter(|&&class| class == 1).count(), up.len() - 2);
    // Undoing the coronal stroke takes its slice out of the teaching.
    corrections.undo(&mut labels).unwrap();
    assert_eq!(corrections.painted_slices().len(), 1);
}

#[test]
fn marks_load_back_from_a_mask_and_bad_masks_are_refused() {
    let labels = grid([4, 4, 4], [1.0; 3]);
    let mut mask = Volume::filled([4, 4, 4], IDENTITY, 0u8);
    mask.data[7] = 3;
    let corrections = Corrections::new(&labels)
        .with_marks(&mask, "m.nii")
        .unwrap();
    assert!(corrections.is_marked(7));
    assert_eq!(
        corrections.painted_slices().into_iter().collect::<Vec<_>>(),
        vec![axial(0)]
    );
    mask.data[8] = 9;
    let err = Corrections::new(&labels)
        .with_marks(&mask, "m.nii")
        .unwrap_err();
    assert!(err.to_string().contains("m.nii"), "{err}");
    let small = Volume::filled([4, 4, 3], IDENTITY, 0u8);
    assert!(Corrections::new(&labels)
        .with_marks(&small, "s.nii")
        .is_err());
}

#[test]
fn tools_refuse_a_closed_stroke_a_slice_outside_and_another_grid() {
    let mut labels = grid([4, 4, 4], [1.0; 3]);
    let mut corrections = Corrections::new(&labels);
    assert!(corrections.brush(&mut labels, [0, 0, 0], 1.0, 1).is_err());
    assert!(corrections.begin_stroke(&labels, axial(4)).is_err());
    let other = grid([4, 4, 5], [1.0; 3]);
    assert!(corrections.begin_stroke(&other, axial(0)).is_err());
}
