// The demo page in a real browser (playwright-core + Debian chromium): two pages of one
// browser context share the log in OPFS; the second fences the first, the first shows it;
// a third page follows the log read-only (a `Reader`) while the second appends, never fencing
// it; a reload brings the rows back by replay. Saves screenshots (the fenced tab: *-fenced.png).
//   node demo.mjs <node_modules dir> <screenshot.png>   (www/pkg and www/vendor built first)
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const [nodeModules, screenshot] = process.argv.slice(2).map((p) => path.resolve(p));
const { chromium } = createRequire(path.join(nodeModules, 'x.js'))('playwright-core');
const www = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const port = await new Promise((resolve) => {
  const s = createServer().listen(0, '127.0.0.1', () => {
    const p = s.address().port;
    s.close(() => resolve(p));
  });
});
const server = spawn('python3', ['-m', 'http.server', String(port), '--bind', '127.0.0.1', '--directory', www], {
  stdio: 'ignore',
});
const url = `http://127.0.0.1:${port}/`;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
});

const text = (page, id) => page.locator(`#${id}`).textContent();
const ready = (page) => page.waitForSelector('#status[data-state="ready"]', { timeout: 30000 });

try {
  for (let i = 0; i < 50; i++) {
    if (await fetch(url).then((r) => r.ok, () => false)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const context = await browser.newContext();
  const first = await context.newPage();
  const errors = [];
  first.on('pageerror', (e) => errors.push(e.message));
  await first.goto(url);
  await ready(first);
  assert.equal(await text(first, 'total'), '0');
  await first.fill('#rows', '250');
  await first.click('#append');
  await first.waitForFunction(() => document.getElementById('total').textContent === '250');
  await first.click('#append10');
  await first.waitForFunction(() => document.getElementById('total').textContent === '2750');
  const firstEpoch = Number(await text(first, 'epoch'));
  // The entries table shows this writer's fence and its data entries.
  assert.match(await first.locator('#entries tbody').textContent(), /fence/);

  // A second tab takes the log over: it replays everything and owns a newer epoch.
  const second = await context.newPage();
  await second.goto(url);
  await ready(second);
  assert.equal(await text(second, 'total'), '2750');
  assert.ok(Number(await text(second, 'epoch')) > firstEpoch);

  // The first tab's next write finds the fence and says so.
  await first.click('#append');
  await first.waitForSelector('#status[data-state="fenced"]', { timeout: 30000 });
  assert.match(await text(first, 'status'), /Fenced/);
  await first.screenshot({ path: screenshot.replace(/\.png$/, '-fenced.png'), fullPage: true });

  // A read-only follower (a `Reader`) sees every row the second writes, and fences nobody:
  // the writer goes on appending.
  const follower = await context.newPage();
  follower.on('pageerror', (e) => errors.push(e.message));
  await follower.goto(`${url}?follow`);
  await follower.waitForSelector('#status[data-state="following"]', { timeout: 30000 });
  await follower.waitForFunction(() => document.getElementById('total').textContent === '2750');
  await second.fill('#rows', '100');
  for (let i = 0; i < 3; i++) await second.click('#append');
  await second.waitForFunction(() => document.getElementById('total').textContent === '3050');
  await follower.waitForFunction(() => document.getElementById('total').textContent === '3050');
  assert.equal(await second.locator('#status').getAttribute('data-state'), 'ready');
  await follower.close();

  // The second writes and flushes a generation; a reload replays every acknowledged row.
  await second.fill('#rows', '500');
  await second.click('#append');
  await second.waitForFunction(() => document.getElementById('total').textContent === '3550');
  await second.click('#flush');
  await second.waitForFunction(() => document.getElementById('generations').textContent !== '0');
  await second.reload();
  await ready(second);
  assert.equal(await text(second, 'total'), '3550');
  await second.screenshot({ path: screenshot, fullPage: true });
  assert.deepEqual(errors, []);
  console.log(`demo page ok: fencing across tabs, a read-only follower that fences nobody, 3550 rows replayed after reload; screenshot ${screenshot}`);
} finally {
  await browser.close();
  server.kill();
}
