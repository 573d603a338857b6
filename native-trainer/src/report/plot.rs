//! PNG line plots of training curves, drawn in memory with `plotters` and written atomically.
//!
//! Text is drawn with DejaVu Sans embedded in the binary (the `dejavu` crate) through plotters'
//! `ab_glyph` renderer, so plotting needs no system fonts or libraries. Points with a non-finite
//! coordinate (and, on a logarithmic axis, values `<= 0`) are gaps: the curve is broken there, and
//! a point with no neighbour is drawn as a dot.

use super::metrics::{read_metrics, MetricRecord};
use anyhow::{anyhow, Context, Result};
use brainmvp_core::fs::write_atomic;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

/// Width of every plot in pixels.
pub const PLOT_WIDTH: u32 = 800;
/// Height of every plot in pixels.
pub const PLOT_HEIGHT: u32 = 500;
/// Font family name every text element uses (plotters' default family).
const FONT_FAMILY: &str = "sans-serif";
/// Line colours, in series order (then repeated).
const COLOURS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

/// Plot named curves of `(x, y)` points into an 800×500 PNG at `path` (temp file + rename).
/// With `log_y` the y axis is logarithmic (values `<= 0` are skipped). Empty series, series of one
/// point and non-finite points are fine.
pub fn plot_curves<S: AsRef<str>>(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(S, Vec<(f64, f64)>)],
    log_y: bool,
) -> Result<()> {
    let png = render_png(title, x_label, y_label, series, log_y)
        .with_context(|| format!("{}: drawing the plot", path.display()))?;
    write_atomic(path, |out| out.write_all(&png))?;
    Ok(())
}

/// Plot the metrics `keys` of the JSON-lines log at `log_path` against the step into `png_path`.
/// One curve per key and record kind (named `key`, or `kind key` when several kinds have the key);
/// the y axis is logarithmic when every plotted value is positive and they span a factor of 10 or
/// more. Keys not in the log are left out (an empty log gives an empty plot).
pub fn plot_metrics(log_path: &Path, png_path: &Path, keys: &[&str]) -> Result<()> {
    let records = read_metrics(log_path)?;
    let series = metric_series(&records, keys);
    let title = log_path
        .file_name()
        .map_or_else(String::new, |name| name.to_string_lossy().into_owned());
    let y_label = match keys {
        [key] => *key,
        _ => "value",
    };
    let log_y = wants_log_scale(&series);
    plot_curves(png_path, &title, "step", y_label, &series, log_y)
}

/// The curves of [`plot_metrics`], in key order then kind order.
fn metric_series(records: &[MetricRecord], keys: &[&str]) -> Vec<(String, Vec<(f64, f64)>)> {
    let mut series = Vec::new();
    for key in keys {
        let mut by_kind: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
        for record in records {
            if let Some(value) = record.values.get(*key) {
                let points = by_kind.entry(record.kind.as_str()).or_default();
                points.push((record.step as f64, *value));
            }
        }
        let several_kinds = by_kind.len() > 1;
        for (kind, points) in by_kind {
            let name = if several_kinds {
                format!("{kind} {key}")
            } else {
                key.to_string()
            };
            series.push((name, points));
        }
    }
    series
}

/// Whether every finite y is positive and max/min >= 10.
fn wants_log_scale(series: &[(String, Vec<(f64, f64)>)]) -> bool {
    let values: Vec<f64> = series
        .iter()
        .flat_map(|(_, points)| points.iter().map(|&(_, y)| y))
        .filter(|y| y.is_finite())
        .collect();
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    !values.is_empty() && min > 0.0 && max / min >= 10.0
}

/// One curve split at its gaps, in plotted coordinates (log10 of y on a log axis).
struct Curve<'a> {
    name: &'a str,
    segments: Vec<Vec<(f64, f64)>>,
}

/// Split `points` into runs of drawable points.
fn segments(points: &[(f64, f64)], log_y: bool) -> Vec<Vec<(f64, f64)>> {
    let mut runs = vec![Vec::new()];
    for &(x, y) in points {
        let y = if log_y { y.log10() } else { y };
        if x.is_finite() && y.is_finite() {
            runs.last_mut().expect("never empty").push((x, y));
        } else if runs.last().is_some_and(|run| !run.is_empty()) {
            runs.push(Vec::new());
        }
    }
    runs.retain(|run| !run.is_empty());
    runs
}

/// The axis range covering `values`: padded by 5 % on the y axis, widened when degenerate.
fn axis_range(values: impl Iterator<Item = f64>, pad_fraction: f64) -> (f64, f64) {
    let (min, max) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if min > max {
        return (0.0, 1.0);
    }
    let span = max - min;
    if span <= f64::EPSILON * max.abs().max(min.abs()).max(f64::MIN_POSITIVE) {
        let half = if min == 0.0 { 1.0 } else { min.abs() * 0.1 };
        return (min - half, max + half);
    }
    (min - span * pad_fraction, max + span * pad_fraction)
}

/// A tick label: plain decimals for ordinary magnitudes, scientific notation otherwise.
fn format_tick(value: f64) -> String {
    let magnitude = value.abs();
    if value == 0.0 {
        "0".to_string()
    } else if !(1e-3..1e5).contains(&magnitude) {
        format!("{value:.1e}")
    } else {
        let text = format!("{value:.4}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// The tick label of a log10 value: 10^v rounded to two significant digits (0.4, not 0.3981).
fn format_log_tick(exponent: f64) -> String {
    let rounded: f64 = format!("{:.1e}", 10f64.powf(exponent))
        .parse()
        .unwrap_or(f64::NAN);
    format_tick(rounded)
}

/// Register the embedded font once; plotters looks text fonts up by family name.
fn register_embedded_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, dejavu::sans::regular())
            .is_ok()
    });
    ok.then_some(())
        .ok_or_else(|| anyhow!("the embedded DejaVu Sans font could not be loaded"))
}

/// Draw the plot and encode it as PNG bytes.
fn render_png<S: AsRef<str>>(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(S, Vec<(f64, f64)>)],
    log_y: bool,
) -> Result<Vec<u8>> {
    register_embedded_font()?;
    let curves: Vec<Curve> = series
        .iter()
        .map(|(name, points)| Curve {
            name: name.as_ref(),
            segments: segments(points, log_y),
        })
        .collect();
    let mut rgb = vec![0u8; PLOT_WIDTH as usize * PLOT_HEIGHT as usize * 3];
    draw_chart(&mut rgb, title, x_label, y_label, &curves, log_y)?;
    encode_png(&rgb)
}

/// Draw the axes, curves and legend into an RGB buffer of the plot size.
fn draw_chart(
    rgb: &mut [u8],
    title: &str,
    x_label: &str,
    y_label: &str,
    curves: &[Curve],
    log_y: bool,
) -> Result<()> {
    let all_points = || {
        curves
            .iter()
            .flat_map(|curve| curve.segments.iter().flatten())
    };
    let (x_min, x_max) = axis_range(all_points().map(|p| p.0), 0.0);
    let (y_min, y_max) = axis_range(all_points().map(|p| p.1), 0.05);
    let root = BitMapBackend::with_buffer(rgb, (PLOT_WIDTH, PLOT_HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT_FAMILY, 22))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(72)
        .build_cartesian_2d(x_min..x_max, y_min..y_max)?;
    let y_tick = |v: &f64| {
        if log_y {
            format_log_tick(*v)
        } else {
            format_tick(*v)
        }
    };
    let x_tick = |v: &f64| format_tick(*v);
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .x_label_formatter(&x_tick)
        .y_label_formatter(&y_tick)
        .light_line_style(RGBColor(235, 235, 235))
        .draw()?;
    let mut any_legend = false;
    for (index, curve) in curves.iter().enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        any_legend |= draw_curve(&mut chart, curve, colour)?;
    }
    if any_legend {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

/// The chart type [`draw_chart`] draws on.
type Chart<'a, 'b> = ChartContext<
    'a,
    BitMapBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// Draw one curve (lines for runs, dots for lone points); returns whether it got a legend entry.
fn draw_curve(chart: &mut Chart, curve: &Curve, colour: RGBColor) -> Result<bool> {
    let style = ShapeStyle::from(&colour).stroke_width(2);
    let mut labelled = false;
    for segment in &curve.segments {
        let annotation = if segment.len() == 1 {
            chart.draw_series(std::iter::once(Circle::new(segment[0], 3, style.filled())))?
        } else {
            chart.draw_series(LineSeries::new(segment.iter().copied(), style))?
        };
        if !labelled {
            annotation
                .label(curve.name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
            labelled = true;
        }
    }
    Ok(labelled)
}

/// Encode an RGB buffer of the plot size as an 8-bit RGB PNG.
fn encode_png(rgb: &[u8]) -> Result<Vec<u8>> {
    encode_png_image(rgb, PLOT_WIDTH, PLOT_HEIGHT, png::ColorType::Rgb)
}

/// Encode 8-bit `pixels` (`width × height`, rows top to bottom) of `colour` as a PNG.
pub fn encode_png_image(
    pixels: &[u8],
    width: u32,
    height: u32,
    colour: png::ColorType,
) -> Result<Vec<u8>> {
    let mut png = Vec::new();
    let mut encoder = png::Encoder::new(&mut png, width, height);
    encoder.set_color(colour);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(pixels)?;
    writer.finish()?;
    Ok(png)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_dir::TestDir;

    fn temp_dir(name: &str) -> TestDir {
        TestDir::new(&format!("plot-{name}"))
    }

    /// Check the PNG signature and IHDR size by hand, then decode to RGB pixels.
    fn decode(bytes: &[u8]) -> Vec<[u8; 3]> {
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&bytes[12..16], b"IHDR");
        let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
        let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
        assert_eq!((width, height), (800, 500));
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut pixels).unwrap();
        assert_eq!(info.color_type, png::ColorType::Rgb);
        pixels.chunks_exact(3).map(|p| [p[0], p[1], p[2]]).collect()
    }

    fn count(pixels: &[[u8; 3]], colour: RGBColor) -> usize {
        let RGBColor(r, g, b) = colour;
        pixels.iter().filter(|p| **p == [r, g, b]).count()
    }

    fn line(slope: f64) -> Vec<(f64, f64)> {
        (0..50)
            .map(|i| (i as f64, 1.0 + slope * i as f64))
            .collect()
    }

    #[test]
    fn writes_an_800_by_500_png_and_a_second_series_adds_its_colour() {
        let dir = temp_dir("two");
        let one_path = dir.join("one.png");
        let two_path = dir.join("two.png");
        plot_curves(
            &one_path,
            "loss",
            "step",
            "loss",
            &[("a", line(0.5))],
            false,
        )
        .unwrap();
        let both = [("a", line(0.5)), ("b", line(-0.01))];
        plot_curves(&two_path, "loss", "step", "loss", &both, false).unwrap();
        let one = decode(&std::fs::read(&one_path).unwrap());
        let two = decode(&std::fs::read(&two_path).unwrap());
        assert_ne!(one, two);
        assert!(count(&one, COLOURS[0]) > 100);
        assert_eq!(count(&one, COLOURS[1]), 0);
        assert!(count(&two, COLOURS[1]) > 100);
        assert!(!brainmvp_core::fs::temp_path(&two_path).exists());
    }

    #[test]
    fn text_is_drawn_with_the_embedded_font() {
        let series = [("a", line(1.0))];
        let titled = decode(&render_png("A long title", "x", "y", &series, false).unwrap());
        let untitled = decode(&render_png("", "x", "y", &series, false).unwrap());
        // The caption occupies the top rows: dark pixels there only when a title is drawn.
        let dark_top = |pixels: &[[u8; 3]]| {
            pixels[..800 * 40]
                .iter()
                .filter(|p| p.iter().all(|&c| c < 100))
                .count()
        };
        assert!(dark_top(&titled) > 50, "{}", dark_top(&titled));
        assert_eq!(dark_top(&untitled), 0);
    }

    #[test]
    fn empty_single_point_and_non_finite_series_do_not_fail() {
        let empty: [(&str, Vec<(f64, f64)>); 0] = [];
        decode(&render_png("t", "x", "y", &empty, false).unwrap());
        decode(&render_png("t", "x", "y", &[("e", vec![])], true).unwrap());
        let lone = decode(&render_png("t", "x", "y", &[("p", vec![(3.0, 2.0)])], false).unwrap());
        assert!(count(&lone, COLOURS[0]) > 10);
        let nan_only = [("n", vec![(f64::NAN, 1.0), (1.0, f64::INFINITY)])];
        let blank = decode(&render_png("t", "x", "y", &nan_only, false).unwrap());
        assert_eq!(count(&blank, COLOURS[0]), 0);
        let log_with_zero = [("z", vec![(0.0, 0.0), (1.0, 1e-3), (2.0, 1e-1), (3.0, -1.0)])];
        let log = decode(&render_png("t", "x", "y", &log_with_zero, true).unwrap());
        assert!(count(&log, COLOURS[0]) > 100);
    }

    #[test]
    fn gaps_split_curves_and_ranges_handle_degenerate_data() {
        let points = [
            (0.0, 1.0),
            (1.0, f64::NAN),
            (2.0, 3.0),
            (3.0, 4.0),
            (4.0, 0.0),
        ];
        assert_eq!(
            segments(&points, false),
            vec![vec![(0.0, 1.0)], vec![(2.0, 3.0), (3.0, 4.0), (4.0, 0.0)]]
        );
        let log = segments(&points, true);
        assert_eq!(log.len(), 2);
        assert_eq!(log[1].len(), 2);
        assert!((log[1][0].1 - 3f64.log10()).abs() < 1e-12);
        assert_eq!(axis_range([2.0, 4.0].into_iter(), 0.05), (1.9, 4.1));
        assert_eq!(axis_range([5.0].into_iter(), 0.05), (4.5, 5.5));
        assert_eq!(axis_range([0.0].into_iter(), 0.05), (-1.0, 1.0));
        assert_eq!(axis_range(std::iter::empty(), 0.05), (0.0, 1.0));
        assert_eq!(format_tick(0.25), "0.25");
        assert_eq!(format_tick(120.0), "120");
        assert_eq!(format_tick(2.5e-5), "2.5e-5");
        assert_eq!(format_log_tick(-0.4), "0.4");
        assert_eq!(format_log_tick(-0.2), "0.63");
        assert_eq!(format_log_tick(2.0), "100");
    }

    #[test]
    fn plot_metrics_plots_each_key_and_kind() {
        let dir = temp_dir("metrics");
        let log_path = dir.join("metrics.jsonl");
        let mut log = crate::report::MetricsLog::open(&log_path, None).unwrap();
        for step in 1..=40u64 {
            let loss = 1.0 / step as f64;
            log.log_values(step, "train", &[("loss", loss), ("lr", 3e-4)])
                .unwrap();
            if step % 10 == 0 {
                log.log_values(step, "val", &[("loss", 2.0 * loss)])
                    .unwrap();
            }
        }
        let records = read_metrics(&log_path).unwrap();
        let series = metric_series(&records, &["loss", "missing"]);
        let names: Vec<&str> = series.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["train loss", "val loss"]);
        assert_eq!(
            series[1].1,
            vec![(10.0, 0.2), (20.0, 0.1), (30.0, 0.2 / 3.0), (40.0, 0.05)]
        );
        assert!(wants_log_scale(&series));
        let png_path = dir.join("loss.png");
        plot_metrics(&log_path, &png_path, &["loss"]).unwrap();
        let pixels = decode(&std::fs::read(&png_path).unwrap());
        assert!(count(&pixels, COLOURS[0]) > 100);
        assert!(count(&pixels, COLOURS[1]) > 20);
        let message = format!(
            "{:#}",
            plot_metrics(&dir.join("none.jsonl"), &png_path, &["loss"]).unwrap_err()
        );
        assert!(message.contains("none.jsonl"), "{message}");
    }
}
