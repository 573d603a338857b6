// Shared by the browser tests: Chromium's flags and a static server for www/dist.

import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '..', '..');
export const distDir = path.join(repoRoot, 'www', 'dist');
/** The shared MRI folder: $BRAINMVP_MRI_DIR, else ../shared/data/mri beside the repository (the
 * rule of core::synth::templates::shared_mri_dir). */
export const sharedMriDir = process.env.BRAINMVP_MRI_DIR ?? path.resolve(repoRoot, '..', 'shared', 'data', 'mri');

// Flags every launch gets: root needs --no-sandbox; nothing may reach the network.
const baseArgs = [
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
  '--disable-default-apps',
  '--disable-extensions',
];

/** Chromium's command line: the base flags plus `extra` (e.g. --enable-unsafe-webgpu). */
export function launchArgs(extra = []) {
  return [...baseArgs, ...extra];
}

const mimeTypes = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
};

/** Serve `root` (default www/dist) on 127.0.0.1 on a free port: {server, baseUrl}. */
export async function serveDist(root = distDir) {
  const server = createServer(async (request, response) => {
    const urlPath = decodeURIComponent(new URL(request.url, 'http://localhost').pathname);
    const filePath = path.join(root, urlPath.endsWith('/') ? `${urlPath}index.html` : urlPath);
    if (!filePath.startsWith(root + path.sep)) {
      response.writeHead(403).end();
      return;
    }
    try {
      const body = await readFile(filePath);
      const type = mimeTypes[path.extname(filePath)] ?? 'application/octet-stream';
      response.writeHead(200, { 'Content-Type': type, 'Cache-Control': 'no-store' }).end(body);
    } catch {
      response.writeHead(404).end();
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, baseUrl: `http://127.0.0.1:${server.address().port}` };
}

/** Click the page's Segment button and wait (up to `timeout` ms) for the status line to say how
 * it ended; returns that line. */
export async function segmentThroughButton(page, timeout = 480_000) {
  await page.click('#segment');
  await page.waitForFunction(() => /^(done|segmentation failed)/.test(document.getElementById('segment-status').textContent),
    null, { timeout, polling: 500 });
  return page.textContent('#segment-status');
}

/** Runs in the page (pass its source: `fetchSampleInputs.toString()`, then eval it there): the
 * bundled model and sample case fetched as the page itself does: {model, images, label}. */
export async function fetchSampleInputs() {
  const get = async (url) => new Uint8Array(await (await fetch(url)).arrayBuffer());
  const index = await (await fetch('assets/sample/index.json')).json();
  const images = [];
  let label = null;
  for (const file of index.files) {
    const bytes = await get(`assets/sample/${file.name}`);
    if (file.modality === 'label') label = { name: file.name, bytes };
    else images.push({ name: file.name, modality: file.modality, bytes });
  }
  return { model: { name: 'demo-model.bmvp', bytes: await get('assets/demo-model.bmvp') }, images, label };
}
