// The Express application of the pass-mode integration tests: Express 5 with
// multer (busboy underneath, append-field for bracketed names), as an Express
// app parses an upload form. It answers every POST with what multer made of
// the form:
//
//   {"body": req.body, "files": ["<field of each file part>", ...]}
//
// and GET with a line of text (the harness's readiness probe). A path ending
// in /reject answers 422 (the gateway then rolls the upload back).
//
//   node server.js PORT      # NODE_PATH must hold express and multer
//                            # (integration/testenv/apps-up.sh installs them)
'use strict';

const express = require('express');
const multer = require('multer');

const port = Number(process.argv[2] || process.env.PORT);
if (!port) {
  console.error('usage: node server.js PORT');
  process.exit(2);
}

const app = express();
// defParamCharset utf8: browsers send non-ASCII field and file names as raw
// UTF-8; busboy's default reads them as Latin-1.
const upload = multer({ storage: multer.memoryStorage(), defParamCharset: 'utf8' });

app.get('*splat', (req, res) => res.type('text').send('express test app\n'));
app.post('*splat', upload.any(), (req, res) => {
  res.status(req.path.endsWith('/reject') ? 422 : 200);
  res.json({ body: req.body, files: (req.files || []).map((f) => f.fieldname) });
});
app.use((err, req, res, next) => {
  res.status(400).json({ error: String(err && err.message) });
});

app.listen(port, '127.0.0.1');
