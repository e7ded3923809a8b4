// Browser test: the demo page in headless Chromium against a real
// `roomcast standalone`. Two users in one room see each other's comments,
// hands and poll votes; a reload resumes without gaps; a screenshot goes to
// docs/demo.png; the comment latency from one browser to the other is
// measured and printed.
import { chromium } from "playwright-core";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { startStandalone } from "../standalone.mjs";

const here = dirname(fileURLToPath(import.meta.url));
// `npm run test:browser -- --screenshot` refreshes docs/demo.png; otherwise
// the picture goes to the temp directory, so test runs leave the tree clean.
const screenshot = process.argv.includes("--screenshot")
  ? join(here, "../../../../docs/demo.png")
  : join(tmpdir(), "roomcast-demo.png");
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const SAMPLES = 30;

let passed = 0;
let failed = 0;
async function check(name, fn) {
  const started = Date.now();
  try {
    await fn();
    passed += 1;
    console.log(`  ok   ${name} (${Date.now() - started} ms)`);
  } catch (error) {
    failed += 1;
    console.log(`  FAIL ${name}: ${error?.stack ?? error}`);
  }
}

const sa = await startStandalone();
const profile = await mkdtemp(join(tmpdir(), "roomcast-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath,
  headless: true,
  viewport: { width: 1280, height: 800 },
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const result = {};
try {
  const room = await sa.createRoom("hana", "Night talk");
  const url = (uid) => `${sa.routerUrl}/demo/#${new URLSearchParams({ room, uid })}`;
  const host = await context.newPage();
  const guest = await context.newPage();
  const errors = [];
  for (const page of [host, guest]) page.on("pageerror", (e) => errors.push(String(e)));
  const connected = (page) => page.waitForSelector('#status[data-status="connected"]', { timeout: 15_000 });

  await check("both users join the room over WebSocket", async () => {
    await host.goto(url("hana"));
    await guest.goto(url("gus"));
    await Promise.all([connected(host), connected(guest)]);
    await host.waitForSelector("#role:text('host')");
    await guest.waitForSelector("#role:text('listener')");
    if ((await guest.textContent("#transport")) !== "ws") throw new Error("guest is not on ws");
  });

  await check("each sees the other's comments", async () => {
    await guest.fill("#text", "hello from gus");
    await guest.click("#send");
    await host.waitForSelector('#comments li[data-uid="gus"]:has-text("hello from gus")');
    await host.fill("#text", "welcome, gus");
    await host.click("#send");
    await guest.waitForSelector('#comments li[data-uid="hana"]:has-text("welcome, gus")');
  });

  await check("a raised hand reaches the host; invite, accept, mute", async () => {
    await guest.click("#hand");
    await host.waitForSelector('#hands li[data-uid="gus"]');
    await host.click('#hands li[data-uid="gus"] button[data-action="invite"]');
    await guest.waitForSelector("#invite:not([hidden])");
    await guest.click("#accept");
    await host.waitForSelector('#speakers li[data-uid="gus"]');
    await host.click('#speakers li[data-uid="gus"] button[data-action="mute"]');
    await guest.waitForSelector('#speakers li[data-uid="gus"][data-muted="moderator"]');
  });

  await check("poll votes show live on both pages", async () => {
    await host.fill("#poll-question", "More jazz?");
    await host.fill("#poll-options", "yes, no");
    await host.click("#poll-open");
    await guest.waitForSelector('.poll:has-text("More jazz?")');
    await guest.click('.poll .bar[data-option="0"]');
    await host.waitForSelector('.poll .bar[data-option="0"] .n:text("1")');
    await host.click('.poll .bar[data-option="1"]');
    await guest.waitForSelector('.poll .bar[data-option="1"] .n:text("1")');
  });

  await check("likes and reactions update the counter", async () => {
    for (let i = 0; i < 3; i++) await guest.click("#like");
    await guest.click('.react[data-emoji="🔥"]');
    await host.waitForFunction(() => Number(document.querySelector("#likes")?.textContent) >= 3);
  });

  // A lively frame for the docs: comments in flight, a burst, live poll bars.
  await guest.fill("#text", "this room is great 🎷");
  await guest.click("#send");
  await guest.click('.react[data-emoji="👏"]');
  await host.waitForTimeout(600);
  await host.screenshot({ path: screenshot });
  result.screenshot = screenshot;
  await check("the room state is refetched across origins (CORS)", async () => {
    const title = await guest.evaluate(async () => {
      const { room } = window.roomcast;
      await room.store.resync();
      return room.store.view.title;
    });
    if (title !== "Night talk") throw new Error(`refetched title ${title}`);
  });

  await check(`comment latency, browser to browser (${SAMPLES} samples)`, async () => {
    await host.evaluate(() => {
      window.__seen = {};
      new MutationObserver((records) => {
        for (const r of records) for (const n of r.addedNodes) if (n.textContent) window.__seen[n.textContent.replace(/^#\d+/, "")] = performance.timeOrigin + performance.now();
      }).observe(document.querySelector("#comments"), { childList: true });
    });
    const latencies = [];
    for (let i = 0; i < SAMPLES; i++) {
      const text = `ping ${i}`;
      const sent = await guest.evaluate((t) => {
        const at = performance.timeOrigin + performance.now();
        const input = document.querySelector("#text");
        input.value = t;
        document.querySelector("#composer").requestSubmit();
        return at;
      }, text);
      await host.waitForFunction((key) => window.__seen[key] !== undefined, `gus${text}`);
      const seen = await host.evaluate((key) => window.__seen[key], `gus${text}`);
      latencies.push(seen - sent);
      await guest.waitForTimeout(120); // stay under the comment rate limit (5/s)
    }
    latencies.sort((a, b) => a - b);
    const pick = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))];
    result.comment_latency_ms = { samples: SAMPLES, p50: +pick(0.5).toFixed(1), p95: +pick(0.95).toFixed(1), max: +latencies.at(-1).toFixed(1) };
  });

  await check("a reload resumes without gaps or duplicates", async () => {
    const before = await guest.$$eval("#comments li", (lis) => lis.map((li) => Number(li.dataset.seq)));
    const reloading = guest.reload();
    // Written while the guest's page is away.
    await host.evaluate(async () => {
      for (const t of ["while away 1", "while away 2", "while away 3"]) await window.roomcast.room.comment(t);
    });
    await reloading;
    await connected(guest);
    await guest.waitForSelector('#resumed[data-resumed="true"]');
    await guest.waitForSelector('#comments li:has-text("while away 3")');
    const after = await guest.$$eval("#comments li", (lis) => lis.map((li) => Number(li.dataset.seq)));
    if (new Set(after).size !== after.length) throw new Error(`duplicates: ${after}`);
    for (let i = 1; i < after.length; i++) {
      // Comments are every other durable event: seqs grow, and none seen before is lost.
      if (after[i] <= after[i - 1]) throw new Error(`out of order: ${after}`);
    }
    for (const seq of before) if (!after.includes(seq)) throw new Error(`lost #${seq}: ${after}`);
    const away = await guest.$$eval("#comments li", (lis) => lis.filter((li) => li.textContent.includes("while away")).length);
    if (away !== 3) throw new Error(`saw ${away} of the 3 comments written during the reload`);
  });

  await check("no page errors", async () => {
    if (errors.length) throw new Error(errors.join("\n"));
  });

} finally {
  await context.close();
  await rm(profile, { recursive: true, force: true });
  await sa.stop();
}
console.log(JSON.stringify({ browser: result }));
console.log(`browser: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
