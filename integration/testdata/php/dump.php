<?php
// The PHP application of the pass-mode integration tests, run as the router
// script of PHP's built-in server (php -S 127.0.0.1:PORT dump.php). It
// answers every POST with what PHP's own multipart parser made of the form:
//
//   {"post": $_POST, "files": $_FILES, "verified": {"<field>": true|false}}
//
// "verified" checks, for each file field named in the `files` query
// parameter (comma-separated), the pass_signature field <field>_signature
// over the default pass fields with ugw_verify below, the snippet the README
// gives, keyed with the UGW_PASS_SECRET environment variable. A path ending in
// /reject answers 422 (the gateway then rolls the upload back).

// ugw_verify reports whether $signature is the gateway's pass_signature of
// the file field $field and the values of its pass fields, in the order they
// are configured.
function ugw_verify(string $secret, string $field, array $values, string $signature): bool
{
    $message = '';
    foreach (array_merge([$field], $values) as $v) {
        $message .= strlen($v) . ':' . $v . "\n";
    }
    return hash_equals(hash_hmac('sha256', $message, $secret), $signature);
}

if ($_SERVER['REQUEST_METHOD'] !== 'POST') {
    echo "php test app\n"; // the harness's readiness probe
    return true;
}

$verified = [];
$secret = getenv('UGW_PASS_SECRET') ?: '';
foreach (array_filter(explode(',', $_GET['files'] ?? '')) as $field) {
    // PHP reads "avatar.key" as avatar_key.
    $values = [];
    foreach (['name', 'key', 'bucket', 'size', 'content_type', 'sha256', 'etag'] as $attr) {
        $values[] = (string) ($_POST[$field . '_' . $attr] ?? '');
    }
    $sig = $_POST[$field . '_signature'] ?? '';
    $verified[$field] = is_string($sig) && ugw_verify($secret, $field, $values, $sig);
}

// A path ending in /reject answers 422: the gateway must roll the upload back.
if (str_ends_with(parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH), '/reject')) {
    http_response_code(422);
}
header('Content-Type: application/json');
echo json_encode(['post' => $_POST, 'files' => $_FILES, 'verified' => (object) $verified]);
