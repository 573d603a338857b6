// Headless-Chromium test of the page built by trunk (www/dist): the wasm loads, burn finds the
// WebGPU adapter (SwiftShader on a machine without a GPU), gets the adapter's buffer limits and
// computes a correct matmul; without WebGPU the page says so and falls back to the CPU backend.
//
// Run with `node --test` from tests/browser (after `trunk build --release` in www/), or run.sh.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { launchArgs, serveDist } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..', '..');
const distDir = path.join(repoRoot, 'www', 'dist');
const outputDir = path.join(here, 'output');
const chromiumPath = process.env.CHROMIUM ?? '/usr/bin/chromium';



let server;
let baseUrl;


/** The workspace version from the root Cargo.toml (`[workspace.package] version`). */
async function workspaceVersion() {
  const manifest = await readFile(path.join(repoRoot, 'Cargo.toml'), 'utf8');
  const section = manifest.split('[workspace.package]')[1] ?? '';
  const match = section.match(/^version\s*=\s*"([^"]+)"/m);
  assert.ok(match, 'no [workspace.package] version in Cargo.toml');
  return match[1];
}

/**
 * Open the page in a fresh headless Chromium with `extraArgs`, wait until the wasm has written
 * every line (`data-state` done or failed) and return the lines, console errors and the page.
 */
async function loadPage(extraArgs, screenshotName) {
  const browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: launchArgs(extraArgs),
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 420 } });
    const problems = [];
    const consoleLog = [];
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    page.on('console', (message) => {
      consoleLog.push(`${message.type()}: ${message.text()}`);
      if (message.type() === 'error') problems.push(`console error: ${message.text()}`);
    });
    page.on('requestfailed', (request) => problems.push(`request failed: ${request.url()}`));
    await page.goto(`${baseUrl}/index.html`);
    const finished = await page
      .waitForFunction(() => ['done', 'failed'].includes(document.body.dataset.state), null, {
        timeout: 90_000,
      })
      .then(() => true, () => false);
    const lines = await page.evaluate(() =>
      Object.fromEntries(
        [...document.querySelectorAll('main p[id]')].map((p) => [p.id, p.textContent]),
      ),
    );
    lines.state = await page.evaluate(() => document.body.dataset.state);
    await page.screenshot({ path: path.join(outputDir, screenshotName), fullPage: true });
    assert.ok(finished, `page not finished after 90 s: ${JSON.stringify(lines)}\n${consoleLog.join('\n')}`);
    return { lines, problems };
  } finally {
    await browser.close();
  }
}

/** Parse `... max_storage_buffer_binding_size X MiB (adapter Y MiB, ...` into [X, Y]. */
function grantedAndAdapterMiB(limitsLine, name) {
  const match = limitsLine.match(new RegExp(`${name} ([0-9.]+) MiB \\(adapter ([0-9.]+) MiB`));
  assert.ok(match, `no ${name} in: ${limitsLine}`);
  return [Number(match[1]), Number(match[2])];
}

before(async () => {
  assert.ok(existsSync(path.join(distDir, 'index.html')), `${distDir} not built: run trunk build --release in www/`);
  assert.ok(existsSync(chromiumPath), `${chromiumPath} missing: run scripts/setup-web.sh`);
  await mkdir(outputDir, { recursive: true });
  ({ server, baseUrl } = await serveDist(distDir));
});

after(async () => {
  await new Promise((resolve) => server.close(resolve));
});

test('serves both modules (SIMD and plain) as application/wasm', async () => {
  const index = await (await fetch(`${baseUrl}/index.html`)).text();
  assert.doesNotMatch(index, /(src|href)="\/(?!\/)/, 'absolute URL in index.html');
  // The page loads its module through wasm-loader.js (trunk injects no loader).
  const loader = await (await fetch(`${baseUrl}/wasm-loader.js`)).text();
  const names = [...new Set(loader.match(/[\w.-]+_bg\.wasm/g))].sort();
  assert.deepEqual(names, ['brainmvp-web-plain_bg.wasm', 'brainmvp-web_bg.wasm']);
  for (const name of names) {
    const wasm = await fetch(`${baseUrl}/${name}`);
    assert.equal(wasm.status, 200, name);
    assert.equal(wasm.headers.get('content-type'), 'application/wasm', name);
  }
});

test('WebGPU: SwiftShader adapter, adapter limits, matmul on the GPU', async () => {
  const { lines, problems } = await loadPage(['--enable-unsafe-webgpu'], 'adapter.png');
  console.log(lines);
  assert.deepEqual(problems, []);
  assert.equal(lines.state, 'done', `page state: ${JSON.stringify(lines)}`);
  assert.equal(lines.version, `brainmvp ${await workspaceVersion()}`);
  assert.match(lines.core, /^core: NIfTI round trip ok \(3×2×2 uint8 label map, \d+ bytes as \.nii\.gz\)$/);
  assert.match(lines.adapter, /^WebGPU adapter: /);
  assert.match(lines.adapter, /swiftshader/i);
  assert.equal(lines.backend, 'backend: burn wgpu (WebGPU)');
  // burn asked for the adapter's own limits, not the WebGPU defaults.
  const [grantedBinding, adapterBinding] = grantedAndAdapterMiB(lines.limits, 'max_storage_buffer_binding_size');
  assert.equal(grantedBinding, adapterBinding);
  assert.ok(grantedBinding > 128, `storage binding only ${grantedBinding} MiB`);
  const [grantedBuffer, adapterBuffer] = grantedAndAdapterMiB(lines.limits, 'max_buffer_size');
  assert.equal(grantedBuffer, adapterBuffer);
  assert.equal(lines.check, 'check: ok (matmul [19, 22, 43, 50])');
  assert.equal(lines.status, 'done');
});

test('without WebGPU: the reason is shown and the CPU backend computes the check', async () => {
  const { lines, problems } = await loadPage(['--disable-features=WebGPU'], 'no-webgpu.png');
  console.log(lines);
  assert.deepEqual(problems, []);
  assert.equal(lines.state, 'done', `page state: ${JSON.stringify(lines)}`);
  assert.match(lines.adapter, /^WebGPU not available: \S/);
  assert.equal(lines.backend, 'backend: burn flex (CPU fallback)');
  assert.equal(lines.check, 'check: ok (matmul [19, 22, 43, 50])');
  assert.equal(lines.status, 'done');
});
