// A plain Yjs client (yjs + y-protocols, as a browser tool would use them) for Aula's
// y-websocket endpoint. Usage: node client.mjs WS_URL IDENTITY
// Syncs the board, prints what it sees on page "1" as one JSON line, adds a rectangle and a
// stroke of its own, then stays until its update has been sent and echoed state is stable.
import * as Y from 'yjs'
import * as syncProtocol from 'y-protocols/sync'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import WebSocket from 'ws'

const [url, identity] = process.argv.slice(2)
if (!url || !identity) {
  console.error('usage: node client.mjs WS_URL IDENTITY')
  process.exit(2)
}
const doc = new Y.Doc()
const ws = new WebSocket(url)
ws.binaryType = 'arraybuffer'
const REMOTE = 'remote'
let synced = false

const fail = (msg) => { console.error(msg); process.exit(1) }
setTimeout(() => fail('timed out'), 15000)
ws.on('error', (err) => fail(`websocket error: ${err.message}`))

ws.on('open', () => {
  const enc = encoding.createEncoder()
  encoding.writeVarUint(enc, 0)
  syncProtocol.writeSyncStep1(enc, doc)
  ws.send(encoding.toUint8Array(enc))
})

doc.on('update', (update, origin) => {
  if (origin === REMOTE) return
  const enc = encoding.createEncoder()
  encoding.writeVarUint(enc, 0)
  syncProtocol.writeUpdate(enc, update)
  ws.send(encoding.toUint8Array(enc))
})

ws.on('message', (data) => {
  const dec = decoding.createDecoder(new Uint8Array(data))
  const type = decoding.readVarUint(dec)
  if (type !== 0) return // awareness etc.
  const enc = encoding.createEncoder()
  encoding.writeVarUint(enc, 0)
  const syncType = syncProtocol.readSyncMessage(dec, enc, doc, REMOTE)
  if (encoding.length(enc) > 1) ws.send(encoding.toUint8Array(enc))
  if (syncType === syncProtocol.messageYjsSyncStep2 && !synced) {
    synced = true
    onSynced()
  }
})

function pointCount (item) {
  const points = item.get('points')
  if (!points) return 0
  return points.toArray().reduce((n, chunk) => n + chunk.length / 12, 0)
}

function onSynced () {
  const items = doc.getMap('pages').get('1').get('items')
  const seen = []
  items.forEach((item, id) => {
    seen.push({ id, kind: item.get('kind'), author: item.get('author'), points: pointCount(item), text: item.get('text') ?? null })
  })
  console.log(JSON.stringify({ seen }))
  doc.transact(() => {
    const rect = new Y.Map()
    for (const [k, v] of Object.entries({ kind: 'rect', author: identity, color: '#3366ff', width: 3, z: 100, x: 10, y: 20, w: 200, h: 100 })) rect.set(k, v)
    items.set(`${identity}-rect`, rect)
    const stroke = new Y.Map()
    for (const [k, v] of Object.entries({ kind: 'stroke', author: identity, color: '#ff6600', width: 2.5, z: 101, x: 0, y: 0, w: 0, h: 0 })) stroke.set(k, v)
    const chunk = new Float32Array([1, 2, 0.5, 3, 4, 0.75, 5, 6, 1])
    const points = new Y.Array()
    points.push([new Uint8Array(chunk.buffer)])
    stroke.set('points', points)
    items.set(`${identity}-stroke`, stroke)
  })
  // Give the update time to leave, then close cleanly.
  setTimeout(() => { ws.close(); process.exit(0) }, 500)
}
