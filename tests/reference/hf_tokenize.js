// tests/reference/hf_tokenize.js — ids from Hugging Face `tokenizers` (the npm package pinned in
// tests/fixtures/tokenizers) for the C++ tests to compare with.
//   node hf_tokenize.js TOKENIZER_JSON TEXTS_JSONL [--drop-special]
// reads {"text": ...} lines and prints {"ids": [...], "ids_special": [...]} lines: encode without and
// with add_special_tokens.  --drop-special renames the special added tokens to strings no text
// holds, so that their strings in text are tokenized as ordinary text: HF's split_special_tokens,
// which the node bindings do not expose.  (Renamed, not removed: the library gives added tokens
// ids in list order, so removing one would shift the ids of those after it.)
'use strict';
const fs = require('fs');
const path = require('path');
const {Tokenizer} = require(path.join(__dirname, '../fixtures/tokenizers/node_modules/tokenizers'));

async function main() {
  const [file, texts_file, flag] = process.argv.slice(2);
  const json = JSON.parse(fs.readFileSync(file, 'utf8'));
  if (flag === '--drop-special') {
    for (const t of json.added_tokens) {
      if (t.special) t.content = '\uE000unmatchable\uE000' + t.content;
    }
  }
  const tok = Tokenizer.fromString(JSON.stringify(json));
  for (const t of json.added_tokens) {
    if (!t.special && tok.tokenToId(t.content) !== t.id) {
      throw new Error(`${file}: added token ${t.content} got id ${tok.tokenToId(t.content)}, not ${t.id}`);
    }
  }
  const lines = fs.readFileSync(texts_file, 'utf8').split('\n').filter((l) => l.length > 0);
  const out = [];
  for (const line of lines) {
    const text = JSON.parse(line).text;
    const ids = (await tok.encode(text, null, {addSpecialTokens: false})).getIds();
    const ids_special = (await tok.encode(text, null, {addSpecialTokens: true})).getIds();
    out.push(JSON.stringify({ids, ids_special}));
  }
  process.stdout.write(out.join('\n') + (out.length ? '\n' : ''));
}

main().catch((e) => {
  console.error(e.message || e);
  process.exit(1);
});
