// Starts @uppy/companion's own standalone server (the app its `companion`
// binary serves, configured from COMPANION_* variables) on 127.0.0.1 only:
// the binary listens on every interface. COMPANION_MODULE is the installed
// package's directory (integration/bench/companion-up.sh).
import path from "node:path"
import { pathToFileURL } from "node:url"

const dir = process.env.COMPANION_MODULE
const { default: standalone } = await import(pathToFileURL(path.join(dir, "lib", "standalone", "index.js")).href)
const { socket } = await import(pathToFileURL(path.join(dir, "lib", "companion.js")).href)
const { app } = standalone()
const server = app.listen(Number(process.env.COMPANION_PORT), "127.0.0.1", () => {
  console.log("companion listening on 127.0.0.1:" + process.env.COMPANION_PORT)
})
socket(server)
