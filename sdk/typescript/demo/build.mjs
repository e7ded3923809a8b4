// Builds the demo page into demo/dist (committed: the roomcast binary embeds
// it, so running standalone needs no Node). `--check` fails if the committed
// files differ from a fresh build.
import { build } from "esbuild";
import { mkdir, readFile, writeFile, copyFile, mkdtemp, rm } from "node:fs/promises";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { tmpdir } from "node:os";

const here = dirname(fileURLToPath(import.meta.url));
const check = process.argv.includes("--check");
const out = check ? await mkdtemp(join(tmpdir(), "roomcast-demo-")) : join(here, "dist");
await mkdir(out, { recursive: true });
await build({
  entryPoints: [join(here, "src/main.ts")],
  bundle: true,
  minify: true,
  format: "esm",
  target: "es2020",
  legalComments: "none",
  outfile: join(out, "app.js"),
  logLevel: "warning",
});
await copyFile(join(here, "index.html"), join(out, "index.html"));
await writeFile(join(out, "app.css"), (await readFile(join(here, "style.css"), "utf8")).trim() + "\n");

if (check) {
  let stale = false;
  for (const file of ["index.html", "app.js", "app.css"]) {
    const fresh = await readFile(join(out, file));
    const committed = await readFile(join(here, "dist", file)).catch(() => Buffer.alloc(0));
    if (!fresh.equals(committed)) {
      console.error(`demo/dist/${file} is stale: run \`npm run build:demo\` in sdk/typescript and commit it`);
      stale = true;
    }
  }
  await rm(out, { recursive: true, force: true });
  if (stale) process.exit(1);
  console.log("demo/dist is up to date");
}
