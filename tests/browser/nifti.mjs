// A minimal NIfTI-1 reader for the browser tests: enough to check what the page downloads opens
// as NIfTI elsewhere (header size, magic, dims, datatype, affine) and to compare label maps voxel
// by voxel. Little- and big-endian, .nii and .nii.gz (by the gzip magic).

import { gunzipSync } from 'node:zlib';

const DATATYPES = {
  2: ['getUint8', 1], 4: ['getInt16', 2], 8: ['getInt32', 4], 16: ['getFloat32', 4],
  64: ['getFloat64', 8], 256: ['getInt8', 1], 512: ['getUint16', 2], 768: ['getUint32', 4],
};

/** Parse NIfTI bytes: {dims, datatype, pixdim, srow, data: Float64Array}; throws on anything else. */
export function readNifti(input) {
  let bytes = Buffer.from(input);
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) bytes = gunzipSync(bytes);
  if (bytes.length < 352) throw new Error(`not NIfTI: ${bytes.length} bytes`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let little = true;
  if (view.getInt32(0, true) !== 348) {
    if (view.getInt32(0, false) !== 348) throw new Error('not NIfTI: sizeof_hdr is not 348');
    little = false;
  }
  const magic = bytes.subarray(344, 348).toString('latin1');
  if (magic !== 'n+1\0') throw new Error(`not single-file NIfTI-1: magic ${JSON.stringify(magic)}`);
  const rank = view.getInt16(40, little);
  const dims = [1, 2, 3].map((i) => view.getInt16(40 + 2 * i, little));
  const datatype = view.getInt16(70, little);
  const pixdim = [1, 2, 3].map((i) => view.getFloat32(76 + 4 * i, little));
  const offset = view.getFloat32(108, little);
  const slope = view.getFloat32(112, little);
  const inter = view.getFloat32(116, little);
  const srow = [280, 296, 312].map((start) => [0, 1, 2, 3].map((i) => view.getFloat32(start + 4 * i, little)));
  const [getter, size] = DATATYPES[datatype] ?? [];
  if (!getter) throw new Error(`unsupported datatype ${datatype}`);
  const count = dims[0] * dims[1] * dims[2];
  if (offset + count * size > bytes.length) throw new Error('truncated NIfTI');
  const data = new Float64Array(count);
  const scaled = slope !== 0 && Number.isFinite(slope);
  for (let i = 0; i < count; i++) {
    const raw = view[getter](offset + i * size, little);
    data[i] = scaled ? raw * slope + inter : raw;
  }
  return { rank, dims, datatype, pixdim, srow, data };
}

/**
 * An uncompressed little-endian NIfTI-1 float32 image: `dims` [x, y, z], `srow` three rows of
 * the voxel-to-world affine (as the sform, code 1 = scanner; no qform), `data` x fastest.
 */
export function writeNiftiFloat32(dims, srow, data) {
  const offset = 352;
  const bytes = Buffer.alloc(offset + 4 * data.length);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  view.setInt32(0, 348, true);
  [3, ...dims, 1, 1, 1, 1].forEach((value, i) => view.setInt16(40 + 2 * i, value, true));
  view.setInt16(70, 16, true); // float32
  view.setInt16(72, 32, true); // bits per voxel
  const spacing = [0, 1, 2].map((axis) => Math.hypot(srow[0][axis], srow[1][axis], srow[2][axis]));
  [1, ...spacing, 0, 0, 0, 0].forEach((value, i) => view.setFloat32(76 + 4 * i, value, true));
  view.setFloat32(108, offset, true);
  view.setFloat32(112, 1, true); // scl_slope
  view.setInt16(254, 1, true); // sform_code
  srow.forEach((row, r) => row.forEach((value, i) => view.setFloat32(280 + 16 * r + 4 * i, value, true)));
  bytes.write('n+1\0', 344, 'latin1');
  data.forEach((value, i) => view.setFloat32(offset + 4 * i, value, true));
  return bytes;
}

/** The `size`³ block of `image` (from readNifti) starting at voxel `start`, as NIfTI bytes on
 * the same world grid (the affine's translation moved to the block's first voxel). */
export function cropNifti(image, start, size) {
  const [nx, ny] = image.dims;
  const data = new Float32Array(size * size * size);
  for (let z = 0; z < size; z++) {
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const from = start[0] + x + nx * (start[1] + y + ny * (start[2] + z));
        data[x + size * (y + size * z)] = image.data[from];
      }
    }
  }
  const srow = image.srow.map((row) => [row[0], row[1], row[2],
    row[3] + row[0] * start[0] + row[1] * start[1] + row[2] * start[2]]);
  return writeNiftiFloat32([size, size, size], srow, data);
}

/** The first voxel of the `size`³ block centred on the non-zero voxels of `label` (from
 * readNifti), kept inside the grid. */
export function blockAroundLabels(label, size) {
  const [nx, ny] = label.dims;
  const sum = [0, 0, 0];
  let count = 0;
  label.data.forEach((value, i) => {
    if (!value) return;
    sum[0] += i % nx;
    sum[1] += Math.floor(i / nx) % ny;
    sum[2] += Math.floor(i / (nx * ny));
    count++;
  });
  return sum.map((total, axis) => Math.min(label.dims[axis] - size, Math.max(0, Math.round(total / count) - size / 2)));
}
