// Parse maths fragments with KaTeX: reads a JSON list of {tex, display} on stdin and prints a
// JSON list of {index, error} for each fragment KaTeX refuses (an empty list when all parse).
const katex = require("katex");
let input = "";
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", () => {
  const failures = [];
  JSON.parse(input).forEach((fragment, index) => {
    try {
      katex.renderToString(fragment.tex, { displayMode: fragment.display, throwOnError: true, strict: "error" });
    } catch (err) {
      failures.push({ index, error: String(err.message || err) });
    }
  });
  process.stdout.write(JSON.stringify(failures));
});
