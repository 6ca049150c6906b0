// Joins an Aula room from headless Chromium through the server's browser page, publishing the
// fake camera and microphone, and waits until the page decodes video from another participant.
// Usage: node join.js HTTP_URL TOKEN [SECONDS] [MIN_WIDTH]
// With MIN_WIDTH, also waits until the received picture is at least that wide (a simulcast
// publisher's top layer reaches a browser once the server's estimate of its downlink allows).
// Prints one JSON line with the page's inbound and outbound video stats; exits non-zero on failure.
'use strict';
const { openPage } = require('./lib');

const [url, token, seconds = '40', minWidth = '0'] = process.argv.slice(2);
if (!url || !token) {
  console.error('usage: node join.js HTTP_URL TOKEN [SECONDS] [MIN_WIDTH]');
  process.exit(2);
}

async function videoStats(page) {
  return page.evaluate(async () => {
    const a = window.aula;
    const pick = async (pc, type) => {
      if (!pc) return null;
      const report = await pc.getStats();
      const codecs = new Map();
      report.forEach((s) => { if (s.type === 'codec') codecs.set(s.id, s.mimeType); });
      let found = null;
      report.forEach((s) => {
        if (s.type === type && s.kind === 'video') {
          found = {
            frames: type === 'inbound-rtp' ? s.framesDecoded : s.framesEncoded,
            width: s.frameWidth, height: s.frameHeight, codec: codecs.get(s.codecId) || null,
          };
        }
      });
      return found;
    };
    return {
      joined: a.joined, error: a.error,
      inbound: await pick(a.subscriber, 'inbound-rtp'),
      outbound: await pick(a.publisher, 'outbound-rtp'),
    };
  });
}

(async () => {
  const { browser, page } = await openPage(url, token);
  let last = null;
  try {
    const deadline = Date.now() + Number(seconds) * 1000;
    while (Date.now() < deadline) {
      last = await videoStats(page);
      if (last.error) break;
      const wide = last.inbound && (last.inbound.width || 0) >= Number(minWidth);
      if (last.inbound && last.inbound.frames >= 30 && wide && last.outbound && last.outbound.frames >= 30) {
        // Let the other side decode a while longer before leaving.
        await page.waitForTimeout(2000);
        last = await videoStats(page);
        console.log(JSON.stringify(last));
        await browser.close();
        process.exit(0);
      }
      await page.waitForTimeout(250);
    }
  } catch (err) {
    console.error(String(err));
  }
  console.log(JSON.stringify(last));
  await browser.close();
  process.exit(1);
})();
