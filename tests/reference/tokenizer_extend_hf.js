// Encodes texts with Hugging Face `tokenizers` (the npm package of tests/fixtures/tokenizers), for
// tests/data/tokenizer_extend_test.cpp: does HF load an extended tokenizer.json and give the ids
// hibari gives?
//   node tokenizer_extend_hf.js TOKENIZER_JSON TEXTS_JSONL > IDS_JSONL
// TEXTS_JSONL holds {"text": ...} lines; each output line is {"ids": [...]} (no special tokens).
'use strict';
const fs = require('fs');
const path = require('path');
const {Tokenizer} = require(path.join(__dirname, '../fixtures/tokenizers/node_modules/tokenizers'));

async function main() {
  const [file, texts] = process.argv.slice(2);
  const tok = Tokenizer.fromFile(file);
  const lines = fs.readFileSync(texts, 'utf8').split('\n').filter((l) => l !== '');
  const out = [];
  for (const line of lines) {
    const ids = (await tok.encode(JSON.parse(line).text, null, {addSpecialTokens: false})).getIds();
    out.push(JSON.stringify({ids}));
  }
  process.stdout.write(out.join('\n') + '\n');
}

main().catch((e) => {
  console.error(String(e));
  process.exit(1);
});
