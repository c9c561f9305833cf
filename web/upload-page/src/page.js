// The upload page of the upload gateway: sign in with the login API (a
// session cookie), upload with Uppy's Dashboard and @uppy/aws-s3 against the
// file API's Companion routes, and list, download and delete files.
//
// The handler (module/page) puts its configuration on <body>:
// data-api-base (the file API's base_path) and data-auth-base (where
// /auth/login, /auth/session and /auth/logout are).
import Uppy from '@uppy/core'
import Dashboard from '@uppy/dashboard'
import AwsS3 from '@uppy/aws-s3'

const config = document.body.dataset
const api = location.origin + (config.apiBase || '')
const auth = location.origin + (config.authBase || '')
const $ = (id) => document.getElementById(id)

let uppy = null
let limits = null
let user = null
let uppyUser = null // the id of the user uppy was made for

// ---- messages ----------------------------------------------------------

function say(text, kind = 'error') {
  const p = document.createElement('p')
  p.className = `msg ${kind}`
  p.textContent = text
  const box = $('messages')
  box.prepend(p)
  while (box.children.length > 5) box.lastChild.remove()
}

function clearMessages() {
  $('messages').replaceChildren()
}

// errorText is the message of a JSON error answer: the gateway's envelope
// {"success":false,"error":{"code","message"}}, or a plain {"message"}.
function errorText(json, res) {
  const e = json && (json.error || json)
  return (e && (e.message || (typeof e === 'string' && e))) || `${res.status} ${res.statusText}`.trim()
}

// call sends a JSON request to the gateway (the session cookie goes along:
// same origin) and returns the envelope's data, or throws an Error with the
// server's message and status.
async function call(method, url, body) {
  const init = { method, credentials: 'same-origin', headers: {} }
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json'
    init.body = JSON.stringify(body)
  }
  const res = await fetch(url, init)
  let json = null
  try {
    json = await res.json()
  } catch {
    // not JSON: the status says it
  }
  if (!res.ok || (json && json.success === false)) {
    const err = new Error(errorText(json, res))
    err.status = res.status
    throw err
  }
  return json && typeof json === 'object' && 'data' in json ? json.data : json
}

// ---- requests to the file API, the page's and Uppy's ------------------------

// Every request to the file API goes through this wrapper of fetch. When
// the session cookie has expired (401), it renews the session once with
// the refresh cookie (POST /auth/refresh, empty body) and sends the request
// again; when that fails, the session has ended and the page asks the user
// to sign in again.
//
// Uppy calls <api>/s3/… with plain fetch and reports a failure only as
// "Companion request failed: <status text>", so the wrapper also puts the
// gateway's JSON error message in the status text, and remembers the
// fileId of each single upload (from the params answer) to confirm it.
const fileIds = new Map() // S3 key of a single upload → fileId
const pageFetch = window.fetch.bind(window)
let refreshing = null // the renewal in flight, shared by every request that got 401

function renewSession() {
  refreshing ??= pageFetch(`${auth}/auth/refresh`, { method: 'POST', credentials: 'same-origin' })
    .then((res) => res.ok, () => false)
    .finally(() => {
      refreshing = null
    })
  return refreshing
}

window.fetch = async (input, init) => {
  const url = typeof input === 'string' ? input : input.url
  if (!url.startsWith(`${api}/`)) return pageFetch(input, init)
  let res = await pageFetch(input, init)
  if (res.status === 401 && user) {
    if (await renewSession()) res = await pageFetch(input, init)
    else sessionEnded()
  }
  if (!url.startsWith(`${api}/s3/`)) return res
  if (!res.ok) {
    let json = null
    try {
      json = await res.clone().json()
    } catch {
      // not JSON
    }
    // A status text may only hold visible Latin-1 characters and spaces.
    const text = errorText(json, res).replace(/[^\t\x20-\x7e\xa0-\xff]/g, '?')
    return new Response(null, { status: res.status, statusText: text })
  }
  if (url.startsWith(`${api}/s3/params?`)) {
    try {
      const answer = await res.clone().json()
      if (answer.fileId && answer.fields && answer.fields.key) fileIds.set(answer.fields.key, answer.fileId)
    } catch {
      // Uppy reports a bad answer itself
    }
  }
  return res
}

// fileIdOf returns (and forgets) the fileId of the single upload of an S3
// key: the one the params answer gave, or the key in base64url (what the
// file API uses).
function fileIdOf(key) {
  const id = fileIds.get(key)
  if (id) {
    fileIds.delete(key)
    return id
  }
  const bytes = new TextEncoder().encode(key)
  let bin = ''
  for (const b of bytes) bin += String.fromCharCode(b)
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
}

// ---- sizes ----------------------------------------------------------------

function size(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024
    i++
  }
  return `${i ? n.toFixed(n < 10 ? 1 : 0) : n} ${units[i]}`
}

// ---- uploads --------------------------------------------------------------

const multipart = (file) => (file.size || 0) > limits.multipartThreshold

function startUppy() {
  const types = limits.allowedTypes.length ? limits.allowedTypes : null
  uppy = new Uppy({
    restrictions: { maxFileSize: limits.maxFileSize, allowedFileTypes: types },
  })
    .use(Dashboard, {
      target: '#dashboard',
      inline: true,
      height: 340,
      width: '100%',
      showProgressDetails: true,
      proudlyDisplayPoweredByUppy: false,
      note: limitsText(),
    })
    .use(AwsS3, {
      companionEndpoint: api,
      shouldUseMultipart: multipart,
      // The gateway's part size; bigger for files of over 10,000 parts.
      getChunkSize: (file) => Math.max(limits.partSize, Math.ceil(file.size / 10000)),
    })
  uppy.on('restriction-failed', (file, err) => {
    say(!file || err.message.includes(file.name) ? err.message : `${file.name}: ${err.message}`)
  })
  uppy.on('upload-error', (file, err) => say(`${file.name}: ${err.message}`))
  // Single uploads are confirmed before Uppy reports the batch complete; a
  // file the gateway refuses then counts as failed.
  const confirms = new Map() // Uppy file id → its confirm call
  uppy.on('upload-success', (file, response) => {
    if (!multipart(file)) confirms.set(file.id, confirmUpload(file, response.body.key))
  })
  uppy.addPostProcessor(async (ids) => {
    await Promise.all(
      ids.map(async (id) => {
        const refused = await confirms.get(id)
        confirms.delete(id)
        if (refused) uppy.setFileState(id, { error: refused })
      }),
    )
  })
  uppy.on('complete', (result) => {
    if (result.successful.length) say(`${result.successful.length} file(s) uploaded`, 'info')
    listFiles()
  })
}

// confirmUpload tells the gateway that a single upload is done, so that it
// checks the object (size, type, content) and counts the upload. It
// resolves to the gateway's message when the gateway refused the file (and
// deleted it), else to null; a gateway without the route (404) is fine.
async function confirmUpload(file, key) {
  try {
    await call('POST', `${api}/files/${fileIdOf(key)}/confirm`, { size: file.size, type: file.type })
  } catch (err) {
    if (err.status === 404) return null
    say(`${file.name}: ${err.message}`)
    return err.message
  }
  return null
}

function limitsText() {
  const types = limits.allowedTypes.length ? limits.allowedTypes.join(', ') : 'any type'
  return `Up to ${size(limits.maxFileSize)} per file (${types}); files over ${size(limits.multipartThreshold)} go in parts and can be paused and resumed.`
}

// ---- files ----------------------------------------------------------------

async function listFiles() {
  if (!user) return
  const scope = user.role === 'uploader' ? 'own' : 'all'
  let data
  try {
    data = await call('GET', `${api}/files?scope=${scope}`)
  } catch (err) {
    say(`Listing files: ${err.message}`)
    return
  }
  data.files.sort((a, b) => b.lastModified.localeCompare(a.lastModified))
  const rows = data.files.map(fileRow)
  $('files').tBodies[0].replaceChildren(...rows)
  $('files-empty').hidden = rows.length > 0
}

function fileRow(f) {
  const tr = document.createElement('tr')
  tr.dataset.fileId = f.fileId
  tr.dataset.fileName = f.fileName
  const cells = [f.fileName, size(f.size), new Date(f.lastModified).toLocaleString()]
  for (const [i, text] of cells.entries()) {
    const td = document.createElement('td')
    td.textContent = text
    if (i === 1) td.className = 'num'
    tr.append(td)
  }
  const actions = document.createElement('td')
  actions.append(button('Download', 'download', () => download(f)))
  if (user.role !== 'viewer') {
    const del = button('Delete', 'delete danger', () => {
      if (del.dataset.armed) return remove(f)
      del.dataset.armed = '1'
      del.textContent = 'Really delete?'
    })
    actions.append(del)
  }
  tr.append(actions)
  return tr
}

function button(text, className, onClick) {
  const b = document.createElement('button')
  b.type = 'button'
  b.className = className
  b.textContent = text
  b.addEventListener('click', onClick)
  return b
}

async function download(f) {
  try {
    const data = await call('GET', `${api}/files/${f.fileId}/download-url`)
    // The URL answers with Content-Disposition: attachment.
    location.assign(data.downloadUrl)
  } catch (err) {
    say(`${f.fileName}: ${err.message}`)
  }
}

async function remove(f) {
  try {
    await call('DELETE', `${api}/files/${f.fileId}`)
    say(`${f.fileName} deleted`, 'info')
  } catch (err) {
    say(`${f.fileName}: ${err.message}`)
  }
  listFiles()
}

// ---- signing in and out ------------------------------------------------------

function roleOf(u) {
  return typeof u.role === 'object' && u.role ? u.role.role : u.role
}

async function signedIn(u) {
  user = { id: u.id, email: u.email, role: roleOf(u) || '' }
  if (uppy && uppyUser !== user.id) {
    uppy.destroy()
    uppy = null
  }
  $('user').textContent = user.email || user.id
  $('role').textContent = user.role
  $('who').hidden = false
  $('login').hidden = true
  $('app').hidden = false
  try {
    limits = await call('GET', `${api}/files/limits`)
  } catch (err) {
    say(`Reading the upload limits: ${err.message}`)
    return
  }
  $('limits').textContent = user.role === 'viewer' ? 'Your role (viewer) may download files but not upload them.' : ''
  $('dashboard').hidden = user.role === 'viewer'
  if (!uppy && user.role !== 'viewer') {
    startUppy()
    uppyUser = user.id
  }
  listFiles()
}

// signedOut shows the login form. After a sign-out the uploads are
// forgotten; when the session ended by itself they stay, so that the same
// user can sign in again and retry them.
function signedOut(keepUploads = false) {
  user = null
  if (uppy && !keepUploads) {
    uppy.destroy()
    uppy = null
  }
  $('who').hidden = true
  $('app').hidden = true
  $('login').hidden = false
  $('files').tBodies[0].replaceChildren()
  $('email').focus()
}

function sessionEnded() {
  if (!user) return
  signedOut(true)
  say('Your session has ended: sign in again to continue (failed uploads can then be retried).')
}

$('login').addEventListener('submit', async (ev) => {
  ev.preventDefault()
  clearMessages()
  $('signin').disabled = true
  try {
    const data = await call('POST', `${auth}/auth/login`, { email: $('email').value, password: $('password').value })
    $('password').value = ''
    let u = data.user
    try {
      u = await call('GET', `${auth}/auth/session`) // what the cookie says
    } catch (err) {
      if (err.status !== 404) throw err
    }
    await signedIn(u)
  } catch (err) {
    say(`Sign-in failed: ${err.message}`)
  } finally {
    $('signin').disabled = false
  }
})

$('logout').addEventListener('click', async () => {
  clearMessages()
  try {
    await call('POST', `${auth}/auth/logout`)
  } catch (err) {
    say(`Sign-out: ${err.message}`)
  }
  signedOut()
})

$('refresh').addEventListener('click', () => listFiles())

// A session cookie from an earlier visit signs the user in at once.
call('GET', `${auth}/auth/session`).then(signedIn, (err) => {
  if (err.status && err.status !== 401 && err.status !== 404) say(`Session: ${err.message}`)
  signedOut()
})
