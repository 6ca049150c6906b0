// A teacher runs a class through the server's page: admits a student from the lobby list,
// accepts its raised hand (the student goes on stage), and sends it a chat message.
// Usage: node class-teacher.js HTTP_URL TOKEN STUDENT_NAME CHAT_TEXT
'use strict';
const { seen, step, run } = require('./lib');

const [url, token, student, chatText] = process.argv.slice(2);

run(url, token, '&publish=0', async (page) => {
  await seen(page, '#teacher h2', 'Running the class');
  step('teaching');
  await seen(page, '#lobby-list li', student);
  await page.locator('#lobby-list li', { hasText: student }).locator('button[data-act=admit]').click();
  await seen(page, '#audience li', student);
  step('admitted');
  await seen(page, '#hands li', student);
  await page.locator('#hands li', { hasText: student }).locator('button[data-act=invite_to_stage]').click();
  const onStage = await seen(page, '#on-stage li', student);
  step('on-stage');
  await page.fill('#chat-form input[name=text]', chatText);
  await page.click('#chat-form button');
  const sent = await seen(page, '#chat li', chatText);
  return { on_stage: onStage, sent };
});
