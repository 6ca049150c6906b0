// What the browser tests share: Debian's Chromium launched headless through playwright-core
// (never a browser download), the server's page opened with a token, and a line protocol on
// stdout that the Rust side of a test follows (`STEP name`, then `DONE {json}` or `FAIL ...`).
'use strict';
const { chromium } = require('playwright-core');

const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

/// Launches Chromium with a fake camera and microphone and opens `URL/?token=TOKEN&QUERY`.
async function openPage(url, token, query = '') {
  const browser = await chromium.launch({
    executablePath,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
      // No `--autoplay-policy` switch: the page must work under Chromium's default policy.
    ],
  });
  const page = await browser.newPage();
  page.on('console', (m) => { if (m.type() === 'error') console.error('page:', m.text()); });
  page.on('pageerror', (err) => console.error('page error:', err.message));
  await page.goto(`${url}/?token=${encodeURIComponent(token)}${query}`);
  return { browser, page };
}

/// Waits until an element matching `selector` whose text matches `pattern` is visible on the
/// page, and returns its text.
async function seen(page, selector, pattern, timeout = 30000) {
  const found = page.locator(selector, { hasText: pattern }).first();
  await found.waitFor({ state: 'visible', timeout });
  return found.innerText();
}

/// Tells the Rust side of the test that the page reached `name`.
function step(name) { console.log(`STEP ${name}`); }

/// Runs `script(page)`: prints `DONE` with its result, or `FAIL` with the error and what the
/// page showed. Exits when done, or when the test closes this process's stdin.
async function run(url, token, query, script) {
  const { browser, page } = await openPage(url, token, query);
  process.stdin.on('end', () => browser.close().finally(() => process.exit(1)));
  process.stdin.resume();
  let code = 0;
  try {
    const result = await script(page);
    // AULA_SCREENSHOT=DIR keeps a picture of the page at the end, for a person to look at.
    if (process.env.AULA_SCREENSHOT) {
      await page.screenshot({ path: `${process.env.AULA_SCREENSHOT}/${process.argv[1].split('/').pop()}.png`, fullPage: true });
    }
    console.log(`DONE ${JSON.stringify(result)}`);
  } catch (err) {
    const shown = await page.evaluate(() => ({
      status: document.getElementById('status').textContent,
      notice: document.getElementById('notice').textContent,
      placement: document.body.dataset.placement,
      error: window.aula.error,
    })).catch(() => null);
    console.log(`FAIL ${String(err).split('\n')[0]} ${JSON.stringify(shown)}`);
    code = 1;
  }
  await browser.close();
  process.exit(code);
}

module.exports = { openPage, seen, step, run };
