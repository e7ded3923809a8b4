// Start a real `roomcast standalone` on free ports (tests only).
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { existsSync } from "node:fs";

async function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** The built binary: $ROOMCAST_BIN, else $CARGO_TARGET_DIR/debug/roomcast. */
export function binary() {
  const bin = process.env.ROOMCAST_BIN ?? `${process.env.CARGO_TARGET_DIR ?? "/var/tmp/roomcast-target"}/debug/roomcast`;
  if (!existsSync(bin)) throw new Error(`no roomcast binary at ${bin}: run \`cargo build -p roomcast\` or set ROOMCAST_BIN`);
  return bin;
}

export async function startStandalone() {
  const [router, ws, biz, backend, metrics, admin] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort(), await freePort()];
  const args = ["standalone", "--router-port", router, "--ws-port", ws, "--biz-port", biz, "--backend-port", backend, "--metrics-port", metrics, "--admin-port", admin, "--no-quic"].map(String);
  const child = spawn(binary(), args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, RUST_LOG: "warn" } });
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  const routerUrl = `http://127.0.0.1:${router}`;
  const deadline = Date.now() + 20_000;
  while (!output.includes("Roomcast standalone is running")) {
    if (child.exitCode !== null) throw new Error(`standalone exited: ${output}`);
    if (Date.now() > deadline) throw new Error(`standalone did not start: ${output}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    routerUrl,
    bizUrl: `http://127.0.0.1:${biz}`,
    async token(uid) {
      const r = await fetch(`${routerUrl}/demo/api/token`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ uid }) });
      return (await r.json()).token;
    },
    /** A room owned (hosted) by `owner`, through standalone's demo helper (the backend API with its key). */
    async createRoom(owner, title = "Test room") {
      const r = await fetch(`${routerUrl}/demo/api/rooms`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ title, owner }) });
      const body = await r.json();
      if (!body.room_id) throw new Error(`cannot create a room: ${JSON.stringify(body)}`);
      return body.room_id;
    },
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}
