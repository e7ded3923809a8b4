// The SDK's size as an app ships it: bundled, minified, gzipped.
import { build } from "esbuild";
import { gzipSync } from "node:zlib";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = await build({
  entryPoints: [join(root, "src/index.ts")],
  bundle: true,
  minify: true,
  format: "esm",
  target: "es2020",
  write: false,
  legalComments: "none",
});
const code = out.outputFiles[0].contents;
const gz = gzipSync(code, { level: 9 });
console.log(JSON.stringify({ sdk_size: { minified_bytes: code.length, gzipped_bytes: gz.length } }));
