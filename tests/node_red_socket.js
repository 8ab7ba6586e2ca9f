// A minimal Dashboard 2.0 client for tests/integration/test_node_red.py: the socket.io protocol
// (Engine.IO 4 over a websocket, with the `ws` package Node-RED ships) instead of a browser.
// argv: the dashboard's socket.io URL (http://host:port/dashboard/socket.io/). stdin: one JSON array per line, an event to emit, e.g.
// ["widget-action", "<button id>", {"payload": ""}]. stdout: one JSON line per event received.
const path = require('path')
const readline = require('readline')
const WebSocket = require(path.join(process.env.NODE_RED_MODULES, 'ws'))

const say = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')
const base = process.argv[2] + '?EIO=4&transport='
let ws = null

// The dashboard refuses a websocket that did not start as long-polling (its io middleware), so:
// the handshake and the namespace connect over polling, then the upgrade (probe, "5").
async function start () {
    const open = await (await fetch(base + 'polling')).text()
    const sid = JSON.parse(open.slice(open.indexOf('{'))).sid
    await fetch(base + `polling&sid=${sid}`, { method: 'POST', body: '40' })
    ws = new WebSocket(base.replace(/^http/, 'ws') + `websocket&sid=${sid}`)
    ws.on('open', () => ws.send('2probe'))
    ws.on('message', (data) => {
        const text = data.toString()
        if (text === '3probe') { ws.send('5'); say({ event: 'connected' }) }
        else if (text === '2') ws.send('3')                 // ping
        else if (text.startsWith('42')) {
            const [event, ...args] = JSON.parse(text.slice(2))
            say({ event, args })
        }
    })
    ws.on('error', (err) => { say({ event: 'error', args: [String(err)] }); process.exit(1) })
    ws.on('close', () => process.exit(0))
}
start().catch((err) => { say({ event: 'error', args: [String(err)] }); process.exit(1) })
readline.createInterface({ input: process.stdin }).on('line', (line) => {
    if (line.trim() && ws) ws.send('42' + line.trim())
})
