// Not a test: times a whole real case (240×240×155, ../shared/data/real) segmented through the
// page's controls with its defaults (bundled model, mirror, clean-up), on the page's CPU path and
// on WebGPU (SwiftShader here), and prints the status line and the seconds of each
// (`node time-real-case.mjs [CASE] [cpu|webgpu|both] [QUERY]`, QUERY the page address's options,
// e.g. `workers=1` for one CPU worker or `wasm=plain` for the module without SIMD; needs www/dist
// and ../shared/data/real).
import { chromium } from 'playwright-core';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { launchArgs, repoRoot, segmentThroughButton, serveDist } from './harness.mjs';

const [caseName = 'BraTS-GLI-00001-000', which = 'both', query = ''] = process.argv.slice(2);
const caseDir = path.join(repoRoot, '..', 'shared', 'data', 'real', caseName);
const images = readdirSync(caseDir).filter((name) => name.endsWith('.nii.gz')).map((name) => path.join(caseDir, name));
const backends = which === 'both' ? ['cpu', 'webgpu'] : [which];
const { server, baseUrl } = await serveDist();
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', headless: true, args: launchArgs(['--enable-unsafe-webgpu']) });
try {
  const page = await browser.newPage();
  await page.goto(`${baseUrl}/index.html${query ? `?${query}` : ''}`);
  await page.waitForFunction(() => document.body.dataset.viewer === 'empty', null, { timeout: 120_000 });
  await page.setInputFiles('#file-input', images);
  await page.waitForFunction(() => Number(document.body.dataset.loads ?? 0) > 0, null, { timeout: 120_000 });
  for (const backend of backends) {
    await page.selectOption('#backend-choice', backend);
    const started = Date.now();
    const status = await segmentThroughButton(page, 3_600_000);
    const seconds = (Date.now() - started) / 1000;
    console.log(`${caseName} on ${backend}${query ? ` (${query})` : ''}: ${seconds.toFixed(1)} s · ${status}`);
  }
} finally {
  await browser.close();
  server.close();
}
