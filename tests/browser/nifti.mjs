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
