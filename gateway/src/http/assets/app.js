// Straja camera page: signs in (user name and password, or an access token) and shows the camera
// wall: every camera the user may see as a live tile, each with its own WHEP session
// (draft-ietf-wish-whep) and its state, refreshed from GET /api/v1/cameras. A tile opens large
// and goes back to the wall. The nav switches between the wall and the recordings
// (recordings.js, which uses this file's api(), reasonOf(), mayWatch() and armIdleTimer()).
// window.straja exposes play(id) (opens a camera large, starting its view if it is not live),
// stop() (ends every view), signOut(), framesDecoded([id]), the tiles, and `pc`, the
// RTCPeerConnection of the camera open large, for tests and debugging.
"use strict";

const TOKEN_KEY = "straja.token";
/// How often the cameras' states are refreshed while signed in.
const REFRESH_MS = 3000;
const $ = (id) => document.getElementById(id);
const statusEl = $("status");
const signinEl = $("signin");
const wallEl = $("wall");
const tileTemplate = $("tile");
// csrf: the sign-in's CSRF token (cookie sign-ins only; never stored beyond this page).
// view: "live" (the wall) or "recordings".
const straja = {
  csrf: null, identity: null, tiles: new Map(), focused: null, timings: {}, view: "live",
};
window.straja = straja;
let idleTimer = null;
let refreshTimer = null;

Object.defineProperty(straja, "pc", {
  get() {
    const tile = straja.tiles.get(straja.focused);
    return tile ? tile.pc : null;
  },
});
Object.defineProperty(straja, "camera", { get() { return straja.focused; } });

function setStatus(text) { statusEl.textContent = text; }

// Access token: from a link's fragment (#token=..., never sent to the server in the URL and removed
// from the address bar at once), kept for this tab only.
function takeTokenFromFragment() {
  const match = location.hash.match(/(?:^#|&)token=([^&]+)/);
  if (!match) return;
  sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
  history.replaceState(null, "", location.pathname + location.search);
}

// Headers for an API call: the bearer token when one is used, else the sign-in cookie goes by
// itself and writes carry the CSRF token.
function authorized(headers = {}, write = false) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) return { ...headers, Authorization: `Bearer ${token}` };
  if (write && straja.csrf) return { ...headers, "X-CSRF-Token": straja.csrf };
  return headers;
}

async function reasonOf(response) {
  try { return (await response.json()).error || `HTTP ${response.status}`; } catch (_) {
    return `HTTP ${response.status}`;
  }
}

// Every API call goes through here: a 401 means the sign-in ended (logout elsewhere, inactivity,
// a changed password): the page stops the video and asks to sign in again. A `background` call
// (the wall's state refresh) is not the user's activity and does not put off the idle sign-out.
async function api(path, options = {}, write = false, background = false) {
  const response = await fetch(path, { ...options, headers: authorized(options.headers, write) });
  if (response.status === 401) {
    const reason = await reasonOf(response);
    await signedOut(reason);
    throw new Error(reason);
  }
  if (!background) armIdleTimer();
  return response;
}

// Automatic logoff: after the idle timeout without the user doing anything, the page ends every
// view and the sign-in (the wall's background refresh would otherwise keep it alive on the
// gateway), and the screen stops showing cameras.
function armIdleTimer() {
  clearTimeout(idleTimer);
  const seconds = straja.identity && straja.identity.idle_timeout_seconds;
  if (!seconds) return;
  idleTimer = setTimeout(() => {
    endSignIn("You were signed out after a period of inactivity. Sign in again.");
  }, seconds * 1000 + 1000);
}

/// Ends every view and the sign-in (on the gateway too, for a cookie sign-in), then shows why.
async function endSignIn(reason) {
  const usingCookie = !sessionStorage.getItem(TOKEN_KEY);
  await stopAll(true);
  if (usingCookie) {
    await fetch("/api/v1/logout", { method: "POST", headers: authorized({}, true) }).catch(() => {});
  }
  await signedOut(reason);
}

async function signedOut(reason) {
  clearTimeout(idleTimer);
  clearInterval(refreshTimer);
  refreshTimer = null;
  sessionStorage.removeItem(TOKEN_KEY);
  straja.csrf = null;
  straja.identity = null;
  await stopAll(false);
  closeTile();
  straja.tiles.clear();
  wallEl.replaceChildren();
  if (straja.recordings) straja.recordings.reset();
  showView("live");
  $("viewer").hidden = true;
  $("views").hidden = true;
  $("identity").hidden = true;
  $("signout").hidden = true;
  $("signin-reason").textContent = reason || "";
  $("password").value = "";
  signinEl.hidden = false;
  setStatus("Sign in to see the cameras");
}

function signedIn(identity) {
  // Clinicians have no cameras: their page is the consultation page (the sign-in goes with them:
  // the cookie, or the token in this tab's sessionStorage).
  if (identity.role === "clinician") {
    location.assign("/consultation");
    return Promise.resolve([]);
  }
  straja.identity = identity;
  straja.csrf = identity.csrf_token || null;
  signinEl.hidden = true;
  $("signin-reason").textContent = "";
  $("identity").textContent = `${identity.user} · ${identity.role}`;
  $("identity").hidden = false;
  $("signout").hidden = false;
  $("views").hidden = false;
  $("viewer").hidden = false;
  armIdleTimer();
  clearInterval(refreshTimer);
  refreshTimer = setInterval(() => { loadCameras(true).catch(() => {}); }, REFRESH_MS);
  return loadCameras(false);
}

async function whoAmI() {
  const response = await fetch("/api/v1/session", { headers: authorized() });
  if (response.status === 401) {
    await signedOut(sessionStorage.getItem(TOKEN_KEY) ? await reasonOf(response) : "");
    return [];
  }
  if (!response.ok) throw new Error(`session: ${await reasonOf(response)}`);
  return signedIn(await response.json());
}

signinEl.addEventListener("submit", async (event) => {
  event.preventDefault();
  sessionStorage.removeItem(TOKEN_KEY);
  setStatus("Signing in…");
  const response = await fetch("/api/v1/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ user: $("user").value.trim(), password: $("password").value }),
  });
  $("password").value = "";
  if (!response.ok) {
    let reason = await reasonOf(response);
    const wait = response.headers.get("Retry-After");
    if (wait) reason += ` (try again in ${wait} s)`;
    $("signin-reason").textContent = reason;
    setStatus("Not signed in");
    return;
  }
  straja.ready = signedIn(await response.json()).catch((e) => setStatus(e.message));
});

$("token-submit").addEventListener("click", () => {
  const token = $("token").value.trim();
  $("token").value = "";
  if (!token) return;
  sessionStorage.setItem(TOKEN_KEY, token);
  straja.ready = whoAmI().catch((e) => setStatus(e.message));
});

straja.signOut = () => endSignIn("You have signed out.");
$("signout").addEventListener("click", () => { straja.signOut(); });

// ---- The wall -------------------------------------------------------------------------------

/// Only security staff may watch; others (ops) see the cameras' states without pictures.
function mayWatch() { return Boolean(straja.identity && straja.identity.role === "security"); }

/// Loads the cameras and brings the wall up to date: new tiles (started), gone tiles (stopped),
/// states; a tile whose view failed is started again once its camera plays.
async function loadCameras(background) {
  const response = await api("/api/v1/cameras", {}, false, background);
  if (!response.ok) throw new Error(`cameras: ${await reasonOf(response)}`);
  const cameras = await response.json();
  if (!straja.identity) return cameras;
  const seen = new Set(cameras.map((c) => c.id));
  for (const [id, tile] of straja.tiles) {
    if (!seen.has(id)) {
      stopTile(tile, true);
      if (straja.focused === id) closeTile();
      tile.el.remove();
      straja.tiles.delete(id);
    }
  }
  cameras.forEach((camera, index) => {
    let tile = straja.tiles.get(camera.id);
    if (!tile) {
      tile = makeTile(camera);
      straja.tiles.set(camera.id, tile);
    }
    if (wallEl.children[index] !== tile.el) {
      wallEl.insertBefore(tile.el, wallEl.children[index] || null);
    }
    tile.camera = camera;
    tile.nameEl.textContent = camera.name;
    if (mayWatch() && straja.view === "live" && !tile.starting && (tile.view === "idle" ||
        (["failed", "unavailable"].includes(tile.view) && camera.state === "playing"))) {
      ensurePlaying(tile).catch(() => {});
    }
    showState(tile);
  });
  if (!background) {
    const count = `${cameras.length} camera${cameras.length === 1 ? "" : "s"}`;
    setStatus(!cameras.length ? "No cameras you may view"
      : mayWatch() ? count : `${count}: states only (live view is for security staff)`);
  }
  return cameras;
}

function makeTile(camera) {
  const el = tileTemplate.content.firstElementChild.cloneNode(true);
  el.dataset.camera = camera.id;
  const tile = {
    id: camera.id,
    camera,
    el,
    video: el.querySelector(".tile-video"),
    noteEl: el.querySelector(".tile-note"),
    nameEl: el.querySelector(".tile-name"),
    stateEl: el.querySelector(".tile-state"),
    openEl: el.querySelector(".tile-open"),
    closeEl: el.querySelector(".tile-close"),
    soundEl: el.querySelector(".tile-sound"),
    pc: null,
    session: null,
    // Bumped by every start and stop: an older start that resolves late undoes itself.
    generation: 0,
    starting: null,
    view: "idle",
    detail: "",
    timings: {},
  };
  const open = () => { armIdleTimer(); openTile(tile); };
  tile.openEl.addEventListener("click", open);
  el.querySelector(".tile-screen").addEventListener("click", () => {
    if (mayWatch() && straja.focused !== tile.id) open();
  });
  tile.closeEl.addEventListener("click", () => { armIdleTimer(); closeTile(); });
  tile.soundEl.addEventListener("click", () => { armIdleTimer(); setSound(tile, tile.video.muted); });
  if (!mayWatch()) {
    tile.noteEl.textContent = "Live view is for security staff";
    tile.noteEl.hidden = false;
    tile.openEl.hidden = true;
  }
  return tile;
}

const VIEW_LABELS = {
  idle: "", connecting: "connecting…", live: "live", reconnecting: "connection lost, retrying",
  failed: "connection failed", unavailable: "unavailable", denied: "not allowed",
  stopped: "stopped",
};

function showState(tile) {
  const camera = tile.camera;
  tile.el.dataset.state = camera.state;
  tile.el.dataset.view = tile.view;
  const parts = [camera.state];
  if (mayWatch()) {
    const label = VIEW_LABELS[tile.view] || tile.view;
    if (label) parts.push(tile.detail ? `${label}: ${tile.detail}` : label);
  } else {
    parts.push(`${camera.viewers} watching`);
  }
  tile.stateEl.textContent = parts.join(" · ");
}

function setView(tile, view, detail = "") {
  tile.view = view;
  tile.detail = detail;
  showState(tile);
}

function openTile(tile) {
  if (straja.focused && straja.focused !== tile.id) closeTile();
  straja.focused = tile.id;
  wallEl.classList.add("focused");
  tile.el.classList.add("open");
  tile.openEl.hidden = true;
  tile.closeEl.hidden = false;
  showSoundButton(tile);
  if (mayWatch() && !["live", "connecting", "reconnecting"].includes(tile.view)) {
    ensurePlaying(tile).catch((e) => setStatus(e.message));
  }
}

function closeTile() {
  const tile = straja.tiles.get(straja.focused);
  straja.focused = null;
  wallEl.classList.remove("focused");
  if (!tile) return;
  tile.el.classList.remove("open");
  tile.openEl.hidden = !mayWatch();
  tile.closeEl.hidden = true;
  setSound(tile, false);
  tile.soundEl.hidden = true;
}

/// The wall is silent; the camera open large plays its audio when asked (a click, so that the
/// browser allows it). Only a camera whose view has an audio track offers the button.
function setSound(tile, on) {
  tile.video.muted = !on;
  tile.soundEl.setAttribute("aria-pressed", String(on));
  tile.soundEl.textContent = on ? "Sound off" : "Sound on";
}

function showSoundButton(tile) {
  const stream = tile.video.srcObject;
  const hasAudio = !!stream && stream.getAudioTracks().length > 0;
  tile.soundEl.hidden = !(hasAudio && straja.focused === tile.id);
}

document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && straja.focused) { armIdleTimer(); closeTile(); }
});

// ---- Views: the wall or the recordings --------------------------------------------------------

/// Shows the live wall (`"live"`) or the recordings (`"recordings"`). The wall's views end while
/// the recordings are open (no one sees them, and the box and the browser need not carry them)
/// and start again on the way back.
function showView(view) {
  if (straja.view === view) return;
  straja.view = view;
  for (const [name, link] of [["live", $("view-live")], ["recordings", $("view-recordings")]]) {
    if (name === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  wallEl.hidden = view !== "live";
  $("recordings-view").hidden = view !== "recordings";
  if (view === "recordings") {
    closeTile();
    stopAll(true);
    if (straja.recordings) straja.recordings.open();
    return;
  }
  if (straja.recordings) straja.recordings.close();
  if (straja.identity && mayWatch()) {
    for (const tile of straja.tiles.values()) ensurePlaying(tile).catch(() => {});
  }
}
straja.showView = showView;

$("view-live").addEventListener("click", () => { armIdleTimer(); showView("live"); });
$("view-recordings").addEventListener("click", () => { armIdleTimer(); showView("recordings"); });

/// The tile's view: the session it has or is getting, or a new one.
function ensurePlaying(tile) {
  if (tile.starting) return tile.starting;
  if (tile.session && tile.pc && ["live", "connecting", "reconnecting"].includes(tile.view)) {
    return Promise.resolve(tile.session);
  }
  const started = startTile(tile).finally(() => {
    if (tile.starting === started) tile.starting = null;
  });
  tile.starting = started;
  return started;
}

/// Starts a new WHEP session in the tile (ending the one it had); resolves with its URL.
/// A start that a stop overtakes may never settle (a closed RTCPeerConnection leaves its pending
/// promises pending): nothing waits for it, and a session it still gets is deleted.
async function startTile(tile) {
  const previous = detach(tile);
  if (previous) deleteSession(previous);
  const generation = tile.generation;
  const current = () => generation === tile.generation;
  setView(tile, "connecting");
  const t0 = performance.now();
  tile.timings = {};
  const mark = (name) => { tile.timings[name] = Math.round(performance.now() - t0); };
  const pc = new RTCPeerConnection();
  tile.pc = pc;
  pc.addTransceiver("video", { direction: "recvonly" });
  // The camera's audio, when it has some (the answer leaves it out otherwise).
  pc.addTransceiver("audio", { direction: "recvonly" });
  pc.addEventListener("track", (event) => {
    if (!current()) return;
    const stream = event.streams[0];
    if (stream) {
      tile.video.srcObject = stream;
    } else {
      const tracks = tile.video.srcObject ? tile.video.srcObject.getTracks() : [];
      tile.video.srcObject = new MediaStream([...tracks, event.track]);
    }
    showSoundButton(tile);
  });
  pc.addEventListener("connectionstatechange", () => {
    if (!current()) return;
    mark(pc.connectionState);
    const views = { connected: "live", connecting: "connecting", disconnected: "reconnecting",
                    failed: "failed", closed: "stopped" };
    setView(tile, views[pc.connectionState] || tile.view);
  });
  await pc.setLocalDescription(await pc.createOffer());
  // No wait for ICE gathering: the gateway is ICE-lite and learns this browser's address from its
  // connectivity checks, so the offer can go at once (saves 100-200 ms before the first frame).
  mark("offer");
  let response;
  try {
    response = await api(`/api/v1/cameras/${encodeURIComponent(tile.id)}/whep`, {
      method: "POST",
      headers: { "Content-Type": "application/sdp" },
      body: pc.localDescription.sdp,
    }, true);
  } catch (e) {
    pc.close();
    if (current()) { tile.pc = null; setView(tile, "failed", e.message); }
    throw e;
  }
  const where = response.status === 201 ? response.headers.get("Location") : null;
  const session = where ? new URL(where, location.href).href : null;
  if (!current()) {
    // Stopped or started again meanwhile: this session is not wanted.
    pc.close();
    if (session) deleteSession(session);
    return null;
  }
  if (!session) {
    const reason = await reasonOf(response);
    pc.close();
    tile.pc = null;
    setView(tile, response.status === 403 ? "denied" : "unavailable", reason);
    throw new Error(`Cannot play: ${reason}`);
  }
  mark("answered");
  tile.session = session;
  await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
  return session;
}

function deleteSession(session) {
  return fetch(session, { method: "DELETE", headers: authorized({}, true) }).catch(() => {});
}

/// Ends the tile's view at once (a start under way no longer counts); returns its session, if it
/// had one.
function detach(tile) {
  tile.generation++;
  tile.starting = null;
  const { pc, session } = tile;
  tile.pc = null;
  tile.session = null;
  if (pc) pc.close();
  tile.video.srcObject = null;
  if (pc || session) setView(tile, "stopped");
  return session;
}

/// Ends the tile's view; `tell` also ends the session on the gateway (DELETE).
async function stopTile(tile, tell) {
  const session = detach(tile);
  if (tell && session) await deleteSession(session);
}

async function stopAll(tell) {
  await Promise.all([...straja.tiles.values()].map((tile) => stopTile(tile, tell)));
}

straja.stop = () => stopAll(true);

/// Opens camera `cameraId` large, starting its view unless it is live; resolves with its session.
straja.play = async function play(cameraId) {
  await straja.ready;
  const tile = straja.tiles.get(cameraId);
  if (!tile) throw new Error(`Cannot play: no camera '${cameraId}' on the wall`);
  showView("live");
  openTile(tile);
  const session = await ensurePlaying(tile);
  straja.timings = tile.timings;
  return session;
};

/// Frames decoded so far by camera `cameraId`'s view (default: the camera open large), from
/// getStats, for tests and the status line.
straja.framesDecoded = async function framesDecoded(cameraId) {
  const tile = straja.tiles.get(cameraId === undefined ? straja.focused : cameraId);
  if (!tile || !tile.pc) return 0;
  let frames = 0;
  (await tile.pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") frames = s.framesDecoded || 0;
  });
  return frames;
};

window.addEventListener("pagehide", () => { straja.stop(); });
takeTokenFromFragment();
straja.ready = whoAmI().catch((e) => setStatus(e.message));
