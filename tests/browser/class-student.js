// A student in a class with a lobby, through the server's page: waits in the lobby (first
// with no teacher, then for one to let it in), is admitted to the audience, raises its hand
// with a click, goes on stage and publishes the fake camera, and reads a teacher's chat message.
// Usage: node class-student.js HTTP_URL TOKEN CHAT_TEXT
'use strict';
const { seen, step, run } = require('./lib');

const [url, token, chatText] = process.argv.slice(2);

run(url, token, '', async (page) => {
  const shown = {};
  shown.no_teacher = await seen(page, '#lobby-text', 'No teacher here yet');
  step('lobby-no-teacher');
  shown.waiting = await seen(page, '#lobby-text', 'Waiting for the teacher to let you in');
  step('lobby-waiting');
  shown.audience = await seen(page, '#placement', 'in the audience');
  await page.click('#hand');
  await page.locator('#hand[aria-pressed="true"]').waitFor();
  shown.hands = await seen(page, '#hands li[data-participant]', /\S/);
  step('hand-raised');
  shown.stage = await seen(page, '#placement', 'on stage');
  shown.own_video = await seen(page, '#grid figcaption', '(you)');
  step('on-stage');
  shown.chat = await seen(page, '#chat li', chatText, 60000);
  return shown;
});
