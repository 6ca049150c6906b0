// Joins an Aula room from headless Chromium through the server's browser page, publishing the
// fake camera and microphone, and waits until the page decodes video from another participant
// and shows it: the remote <video> element plays (its time advances) and draws a picture that is
// not black, with Chromium's default autoplay policy and no click or key press on the page.
// Usage: node join.js HTTP_URL TOKEN [SECONDS] [MIN_WIDTH]
// With MIN_WIDTH, also waits until the received picture is at least that wide (a simulcast
// publisher's top layer reaches a browser once the server's estimate of its downlink allows).
// Prints one JSON line with the page's inbound and outbound video stats and what the remote video
// element shows; exits non-zero on failure.
'use strict';
const { chromium } = require('playwright-core');

const [url, token, seconds = '40', minWidth = '0'] = process.argv.slice(2);
if (!url || !token) {
  console.error('usage: node join.js HTTP_URL TOKEN [SECONDS] [MIN_WIDTH]');
  process.exit(2);
}
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

// What the page reports about itself, four times a second, as a console line `aula-stats {...}`.
// It runs as the page's own script (added before the page loads): Playwright's `evaluate` runs
// as a user gesture, which would lift the autoplay policy this test must run under.
function reportStats() {
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
  // The first remote video element: is it playing, how far has it played, and how much of the
  // picture it draws is lit (pixels with luma over 32, on a 64x36 copy).
  const shown = () => {
    const me = window.aula.me && window.aula.me.id;
    const video = document.querySelector(`#grid figure:not([data-participant="${me}"]) video`);
    if (!video) return null;
    let lit = 0;
    if (video.videoWidth > 0) {
      const canvas = document.createElement('canvas');
      canvas.width = 64;
      canvas.height = 36;
      const ctx = canvas.getContext('2d', { willReadFrequently: true });
      ctx.drawImage(video, 0, 0, canvas.width, canvas.height);
      const { data } = ctx.getImageData(0, 0, canvas.width, canvas.height);
      let count = 0;
      for (let i = 0; i < data.length; i += 4) {
        if (0.299 * data[i] + 0.587 * data[i + 1] + 0.114 * data[i + 2] > 32) count += 1;
      }
      lit = count / (canvas.width * canvas.height);
    }
    return {
      paused: video.paused, current_time: video.currentTime, muted: video.muted,
      width: video.videoWidth, lit,
    };
  };
  setInterval(async () => {
    const a = window.aula;
    if (!a) return;
    const stats = {
      joined: a.joined, error: a.error,
      inbound: await pick(a.subscriber, 'inbound-rtp'),
      outbound: await pick(a.publisher, 'outbound-rtp'),
      remote_video: shown(),
      // Nobody clicked or typed on the page: whatever plays, played by itself.
      user_activation: navigator.userActivation.hasBeenActive,
    };
    console.log(`aula-stats ${JSON.stringify(stats)}`);
  }, 250);
}

(async () => {
  const browser = await chromium.launch({
    executablePath,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
      // No `--autoplay-policy` switch: the page must show video under Chromium's default policy.
    ],
  });
  let last = null;
  try {
    const page = await browser.newPage();
    page.on('console', (m) => {
      const text = m.text();
      if (text.startsWith('aula-stats ')) last = JSON.parse(text.slice('aula-stats '.length));
      else if (m.type() === 'error') console.error('page:', text);
    });
    await page.addInitScript(reportStats);
    await page.goto(`${url}/?token=${encodeURIComponent(token)}`);
    const deadline = Date.now() + Number(seconds) * 1000;
    // The remote video's playback time when it was first seen playing.
    let startedAt = null;
    while (Date.now() < deadline) {
      await page.waitForTimeout(250);
      if (!last) continue;
      if (last.error) break;
      const wide = last.inbound && (last.inbound.width || 0) >= Number(minWidth);
      const shown = last.remote_video;
      if (shown && !shown.paused && startedAt === null) startedAt = shown.current_time;
      const plays = shown && !shown.paused && startedAt !== null
        && shown.current_time - startedAt >= 1 && shown.lit >= 0.2;
      if (last.inbound && last.inbound.frames >= 30 && wide && last.outbound
          && last.outbound.frames >= 30 && plays) {
        // Let the other side decode a while longer before leaving.
        await page.waitForTimeout(2000);
        console.log(JSON.stringify(last));
        await browser.close();
        process.exit(0);
      }
    }
  } catch (err) {
    console.error(String(err));
  }
  console.log(JSON.stringify(last));
  await browser.close();
  process.exit(1);
})();
