// Not a test: a CPU profile of the page's worker while it runs 96³ windows of a random UniUnet
// on the CPU path (Chrome DevTools Protocol, sampled), printed as the functions with the most
// self time (wasm functions by their Rust names).
//   node profile-worker.mjs [tiny|small] [ROI] [TOP]     (QUERY=wasm=plain for the plain module)
import { chromium } from 'playwright-core';
import { launchArgs, serveDist } from './harness.mjs';
const [preset = 'uniformer-tiny', roi = '96', top = '40'] = process.argv.slice(2);
const { server, baseUrl } = await serveDist();
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', headless: true, args: launchArgs(['--disable-features=WebGPU']) });
try {
  const page = await browser.newPage();
  await page.goto(`${baseUrl}/index.html${process.env.QUERY ? `?${process.env.QUERY}` : ''}`);
  await page.evaluate(async () => (await import('./segment-client.js')).chooseBackend('cpu'));
  const cdp = await browser.newBrowserCDPSession();
  const { targetInfos } = await cdp.send('Target.getTargets');
  const worker = targetInfos.find((t) => t.type === 'worker' && t.url.includes('worker.js'));
  if (!worker) throw new Error(`no worker among ${targetInfos.map((t) => `${t.type} ${t.url}`).join(', ')}`);
  const { sessionId } = await cdp.send('Target.attachToTarget', { targetId: worker.targetId, flatten: false });
  let nextId = 1;
  const waiting = new Map();
  cdp.on('Target.receivedMessageFromTarget', (event) => {
    const message = JSON.parse(event.message);
    if (message.id && waiting.has(message.id)) {
      waiting.get(message.id)(message.result ?? message.error);
      waiting.delete(message.id);
    }
  });
  const send = (method, params = {}) => new Promise((resolve) => {
    const id = nextId++;
    waiting.set(id, resolve);
    cdp.send('Target.sendMessageToTarget', { sessionId, message: JSON.stringify({ id, method, params }) });
  });
  await send('Profiler.enable');
  await send('Profiler.setSamplingInterval', { interval: 500 });
  await send('Profiler.start');
  const result = await page.evaluate(async ([p, r]) => (await import('./segment-client.js')).bench({ preset: p, roi: r, repeats: 2, backend: 'cpu' }), [preset, Number(roi)]);
  const { profile } = await send('Profiler.stop');
  console.log(`${preset} ${roi}³ window: ${result.msPerWindow.toFixed(0)} ms (${result.wasmVariant})`);
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const self = new Map();
  const gaps = profile.timeDeltas;
  profile.samples.forEach((id, index) => {
    const name = byId.get(id).callFrame.functionName || '(anonymous)';
    self.set(name, (self.get(name) ?? 0) + (gaps[index + 1] ?? 0));
  });
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  for (const [name, us] of [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, Number(top))) {
    console.log(`${(100 * us / total).toFixed(1).padStart(5)} %  ${(us / 1000).toFixed(0).padStart(6)} ms  ${name.slice(0, 150)}`);
  }
} finally {
  await browser.close();
  server.close();
}
