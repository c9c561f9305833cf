<?php
// A small legacy PHP application, the one of the README's walkthrough and
// of the browser tests, run as the router script of PHP's built-in server
// (php -S 127.0.0.1:PORT index.php) behind the gateway. It signs users in
// with a plain PHP session (no JWT) and knows nothing about S3: the gateway
// stores the files and passes the form on with fields naming them.
//
//   GET  /login?user=alice       starts a session, sets the PHPSESSID cookie
//   GET  /session-check          forward_auth's question: 200 with X-User-Id, or 401
//   GET  /attachments/new        the upload page (error=<status> shows why a form was refused)
//   POST /attachments/upload     what the app received: the fields, and an upload_error if any
//   GET  /attachments/progress   a page with a progress bar fed by the gateway's /upload/progress

function page(string $title, string $body): void
{
    header('Content-Type: text/html; charset=utf-8');
    echo "<!doctype html><html><head><meta charset=utf-8><title>" . htmlspecialchars($title) . "</title></head><body>"
        . "<h1>" . htmlspecialchars($title) . "</h1>" . $body . "</body></html>";
}

function explain(string $status): string
{
    $why = [
        '401' => 'Please sign in again.',
        '403' => 'You may not upload here.',
        '413' => 'The file is too large.',
        '415' => 'This kind of file is not allowed.',
    ];
    return $why[$status] ?? 'The upload failed.';
}

function upload_form(string $error = ''): string
{
    $msg = $error === '' ? '' : '<p id="error" role="alert">' . htmlspecialchars(explain($error)) . ' (' . htmlspecialchars($error) . ')</p>';
    return $msg . '<form id="form" method="post" action="/attachments/upload" enctype="multipart/form-data">'
        . '<label>Title <input name="title" id="title" value="holiday"></label> '
        . '<label>File <input type="file" name="attachment" id="file"></label> '
        . '<button id="send" type="submit">Upload</button></form>';
}

$path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);
$method = $_SERVER['REQUEST_METHOD'];

if ($path === '/' && $method === 'GET') {
    echo "legacy php app\n"; // the harness's readiness probe
    return true;
}

if ($path === '/login') {
    session_start();
    $_SESSION['user'] = preg_replace('/[^a-z0-9]/', '', $_GET['user'] ?? 'alice');
    page('Signed in', '<p id="user">' . htmlspecialchars($_SESSION['user']) . '</p>');
    return true;
}

if ($path === '/session-check') {
    // forward_auth asks with the browser's cookies and no body.
    if (isset($_COOKIE[session_name()])) {
        session_start(['read_and_close' => true]);
    }
    if (empty($_SESSION['user'])) {
        http_response_code(401);
        header('Content-Type: text/plain');
        echo "not signed in\n";
        return true;
    }
    header('X-User-Id: ' . $_SESSION['user']);
    http_response_code(204);
    return true;
}

if ($path === '/attachments/new') {
    page('New attachment', upload_form((string) ($_GET['error'] ?? '')));
    return true;
}

if ($path === '/attachments/upload' && $method === 'POST') {
    if (isset($_POST['upload_error'])) {
        // The gateway refused the form (on_error pass upload_error): show
        // the page again with the reason. Nothing was stored.
        http_response_code(200);
        page('New attachment', upload_form((string) $_POST['upload_error']));
        return true;
    }
    $rows = '';
    foreach ($_POST as $k => $v) {
        if (is_string($v)) {
            $rows .= '<dt>' . htmlspecialchars($k) . '</dt><dd id="f-' . htmlspecialchars($k) . '">' . htmlspecialchars($v) . '</dd>';
        }
    }
    $files = count($_FILES);
    page('Attachment received', '<dl id="received">' . $rows . '</dl><p id="files">' . $files . ' file bodies</p>'
        . '<script>window.received = ' . json_encode($_POST) . ';</script>');
    return true;
}

if ($path === '/attachments/progress') {
    // The classic nginx-upload-progress page: the form posts into a hidden
    // iframe with an X-Progress-ID, and the page polls the progress path.
    $body = <<<'HTML'
<form id="form" method="post" target="sink" enctype="multipart/form-data">
<input type="file" name="attachment" id="file"> <button id="send" type="submit">Upload</button></form>
<div style="width:400px;border:1px solid #333"><div id="bar" style="width:0;height:20px;background:#4a4"></div></div>
<p id="state">idle</p>
<iframe name="sink" id="sink" style="width:600px;height:120px"></iframe>
<script>
window.seen = [];
document.getElementById('form').addEventListener('submit', function () {
  var id = 'p' + Date.now() + Math.floor(Math.random() * 1e6);
  this.action = '/attachments/upload?X-Progress-ID=' + id;
  var poll = function () {
    fetch('/upload/progress?X-Progress-ID=' + id, {cache: 'no-store'}).then(function (r) { return r.json(); }).then(function (s) {
      window.seen.push(s);
      document.getElementById('state').textContent = s.state + (s.received !== undefined ? ' ' + s.received + '/' + s.size : '');
      if (s.state === 'uploading' && s.size > 0) {
        document.getElementById('bar').style.width = Math.round(400 * s.received / s.size) + 'px';
      }
      if (s.state === 'done') { document.getElementById('bar').style.width = '400px'; return; }
      if (s.state === 'error') { return; }
      setTimeout(poll, 100);
    });
  };
  setTimeout(poll, 50);
});
</script>
HTML;
    page('Upload with progress', $body);
    return true;
}

http_response_code(404);
echo "not found\n";
return true;
