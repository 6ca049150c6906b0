// A student in a class, through the server's page, as a teacher runs it: accepts a stage
// invitation from the prompt, has its camera muted by the teacher (muted locally, and unmuting
// refused with the server's message shown), is moved back to the audience (its camera stops),
// sees an announcement, and is removed (the page says so, with the teacher's reason).
// Usage: node class-moderated.js HTTP_URL TOKEN
'use strict';
const { seen, step, run } = require('./lib');

const [url, token] = process.argv.slice(2);

run(url, token, '', async (page) => {
  const shown = {};
  await seen(page, '#placement', 'in the audience');
  step('audience');
  shown.invitation = await seen(page, '#invitation', 'invites you to the stage');
  await page.click('#accept-stage');
  await seen(page, '#placement', 'on stage');
  await seen(page, '#grid figcaption', '(you)');
  step('on-stage');
  await page.locator('#mute-camera[aria-pressed="true"]').waitFor();
  shown.camera_enabled = await page.evaluate(() => window.aula.local.get('camera').track.enabled);
  await page.click('#mute-camera');
  shown.refusal = await seen(page, '#notice', /\S/);
  step('unmute-refused');
  await seen(page, '#placement', 'in the audience');
  await page.waitForFunction(() => window.aula.local.size === 0
    && window.aula.publisher.getSenders().every((s) => !s.track));
  shown.video_left = await page.locator('#grid figure').count();
  step('back-in-audience');
  shown.announcement = await seen(page, '#announcement', /\S/);
  step('announcement');
  shown.ended = await seen(page, '#ended', 'removed');
  return shown;
});
