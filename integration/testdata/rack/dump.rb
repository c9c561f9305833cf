# The Rack application of the pass-mode integration tests, as a Rails app
# parses an upload form (Rails' params come from Rack's multipart parser and
# its nested-parameter rules). It answers every POST with what Rack made of
# the form:
#
#   {"params": <Rack::Request#POST, files as {"filename": …}>, "rack": "<version>"}
#
# and GET with a line of text (the harness's readiness probe). A path ending
# in /reject answers 422 (the gateway then rolls the upload back).
#
#   ruby dump.rb PORT      # Debian: ruby, ruby-rack, ruby-webrick
require 'json'
require 'rack'
require 'webrick'

port = Integer(ARGV.fetch(0))

# A stored file would show up as a hash with a :tempfile; the app should
# never get one, but report it legibly if it does.
def plain(v)
  case v
  when Hash
    return { 'filename' => v[:filename] } if v.key?(:tempfile)
    v.to_h { |k, x| [k, plain(x)] }
  when Array then v.map { |x| plain(x) }
  else v
  end
end

app = lambda do |env|
  req = Rack::Request.new(env)
  return [200, { 'content-type' => 'text/plain' }, ["rack test app\n"]] unless req.post?

  body = begin
    { 'params' => plain(req.POST), 'rack' => Rack.release }
  rescue StandardError => e
    return [400, { 'content-type' => 'application/json' }, [JSON.generate('error' => "#{e.class}: #{e.message}")]]
  end
  status = req.path_info.end_with?('/reject') ? 422 : 200
  [status, { 'content-type' => 'application/json' }, [JSON.generate(body)]]
end

Rack::Handler::WEBrick.run(app, Host: '127.0.0.1', Port: port,
                                AccessLog: [], Logger: WEBrick::Log.new($stderr, WEBrick::Log::WARN))
