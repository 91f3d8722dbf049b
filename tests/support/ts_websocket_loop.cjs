// A store=false loop over the gateway's WebSocket mode with the official TypeScript SDK (ResponsesWS).
// node ts_websocket_loop.cjs BASE_URL API_KEY MODEL TURNS -> one JSON line: each turn's final event.
// CommonJS so that NODE_PATH (the SDK installed in .tools/node-sdk) resolves it.
const { OpenAI } = require("openai");
const { ResponsesWS } = require("openai/resources/responses/ws");

const FINAL = new Set(["response.completed", "response.failed", "response.incomplete", "error"]);

async function main() {
  const [baseURL, apiKey, model, turns] = process.argv.slice(2);
  const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 10000 });
  const socket = new ResponsesWS(client);
  let settle = null;
  socket.on("event", (event) => {
    if (FINAL.has(event.type) && settle) settle(event);
  });
  socket.on("error", (error) => settle && settle({ type: "error", error: { message: String(error) } }));
  const turn = (body) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no final event within 10 s")), 10000);
      settle = (event) => {
        clearTimeout(timer);
        resolve(event);
      };
      socket.send({ type: "response.create", ...body });
    });
  const finals = [];
  let previous = null;
  for (let i = 0; i < Number(turns); i++) {
    const body = { model, store: false, input: i ? [{ role: "user", content: "and then?" }] : "hello" };
    if (previous) body.previous_response_id = previous;
    const event = await turn(body);
    const response = event.response || {};
    const text = response.output && response.output[0] && response.output[0].content[0].text;
    finals.push({ type: event.type, id: response.id || null, text: text || null, error: event.error || null });
    if (event.type !== "response.completed") break;
    previous = response.id;
  }
  socket.close({ code: 1000, reason: "done" });
  process.stdout.write(JSON.stringify(finals) + "\n");
}

main().catch((error) => {
  process.stderr.write(String(error && error.stack ? error.stack : error) + "\n");
  process.exit(1);
});
