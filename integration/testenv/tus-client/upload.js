// Uploads a file with tus-js-client, the resumable upload client the
// upload_tus integration tests use. One JSON argument:
//
//   {"endpoint": "https://…/tus/", "file": "/path", "chunkSize": 4194304,
//    "uploadUrl": "…" (resume this upload instead of creating one),
//    "abortAfter": 12345678 (stop mid-PATCH once this many bytes are sent),
//    "headers": {"Authorization": "Basic …"},
//    "protocol": "ietf-draft-05" (or "ietf-draft-03"; default tus-v1)}
//
// It prints one JSON line: {"url", "offset", "done"} and exits 0, or the
// error and exits 1.
'use strict';
const fs = require('fs');
const path = require('path');
const tus = require('tus-js-client');

const opts = JSON.parse(process.argv[2]);
const data = fs.readFileSync(opts.file);
let upload;
const finish = (result, code) => {
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(code);
};
upload = new tus.Upload(data, {
  endpoint: opts.endpoint,
  uploadUrl: opts.uploadUrl || null,
  chunkSize: opts.chunkSize,
  protocol: opts.protocol || 'tus-v1',
  headers: opts.headers || {},
  metadata: { filename: path.basename(opts.file), filetype: 'application/octet-stream' },
  retryDelays: [0, 500, 1000, 2000, 4000],
  onProgress(sent) {
    if (opts.abortAfter && sent >= opts.abortAfter) {
      // Stop mid-PATCH without terminating the upload.
      upload.abort(false).then(() => finish({ url: upload.url, offset: sent, done: false }, 0));
    }
  },
  onError(err) {
    finish({ url: upload.url, error: String(err) }, 1);
  },
  onSuccess() {
    finish({ url: upload.url, offset: data.length, done: true }, 0);
  },
});
upload.start();
