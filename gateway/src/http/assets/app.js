// Straja camera page: lists cameras, plays one over WHEP (RFC draft-ietf-wish-whep).
// window.straja exposes play(id), stop() and the current RTCPeerConnection for tests and debugging.
"use strict";

const TOKEN_KEY = "straja.token";
const statusEl = document.getElementById("status");
const signinEl = document.getElementById("signin");
const listEl = document.getElementById("cameras");
const video = document.getElementById("video");
const straja = { pc: null, session: null, camera: null };
window.straja = straja;

function setStatus(text) { statusEl.textContent = text; }

// Access token: from a link's fragment (#token=..., never sent to the server in the URL and removed
// from the address bar at once), kept for this tab only.
function takeTokenFromFragment() {
  const match = location.hash.match(/(?:^#|&)token=([^&]+)/);
  if (!match) return;
  sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
  history.replaceState(null, "", location.pathname + location.search);
}

function authorized(headers = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { ...headers, Authorization: `Bearer ${token}` } : headers;
}

function askForToken(reason) {
  sessionStorage.removeItem(TOKEN_KEY);
  signinEl.hidden = false;
  setStatus(reason);
}

signinEl.addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, document.getElementById("token").value.trim());
  signinEl.hidden = true;
  straja.ready = loadCameras().catch((e) => setStatus(e.message));
});

async function loadCameras() {
  const response = await fetch("/api/v1/cameras", { headers: authorized() });
  if (response.status === 401) {
    askForToken("Sign in with an access token");
    return [];
  }
  if (!response.ok) throw new Error(`cameras: HTTP ${response.status}`);
  const cameras = await response.json();
  listEl.replaceChildren(...cameras.map((camera) => {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.camera = camera.id;
    button.setAttribute("aria-pressed", "false");
    button.textContent = camera.name;
    const state = document.createElement("span");
    state.className = "state";
    state.textContent = `${camera.state} · ${camera.viewers} watching`;
    button.append(state);
    button.addEventListener("click", () => straja.play(camera.id).catch((e) => setStatus(e.message)));
    item.append(button);
    return item;
  }));
  setStatus(cameras.length ? "Choose a camera" : "No cameras configured");
  return cameras;
}

straja.stop = async function stop() {
  const { pc, session } = straja;
  straja.pc = null;
  straja.session = null;
  if (pc) pc.close();
  if (session) await fetch(session, { method: "DELETE", headers: authorized() }).catch(() => {});
  video.srcObject = null;
};

straja.play = async function play(cameraId) {
  await straja.stop();
  straja.camera = cameraId;
  for (const b of listEl.querySelectorAll("button")) {
    b.setAttribute("aria-pressed", String(b.dataset.camera === cameraId));
  }
  setStatus("Connecting…");
  const t0 = performance.now();
  const mark = (name) => { straja.timings[name] = Math.round(performance.now() - t0); };
  straja.timings = {};
  const pc = new RTCPeerConnection();
  straja.pc = pc;
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addEventListener("track", (event) => {
    video.srcObject = event.streams[0] || new MediaStream([event.track]);
  });
  pc.addEventListener("connectionstatechange", () => {
    const labels = { connected: "Live", connecting: "Connecting…", failed: "Connection failed",
                     disconnected: "Connection lost — retrying", closed: "Stopped" };
    setStatus(labels[pc.connectionState] || pc.connectionState);
    mark(pc.connectionState);
  });
  await pc.setLocalDescription(await pc.createOffer());
  // No wait for ICE gathering: the gateway is ICE-lite and learns this browser's address from its
  // connectivity checks, so the offer can go at once (saves 100-200 ms before the first frame).
  mark("offer");
  const response = await fetch(`/api/v1/cameras/${encodeURIComponent(cameraId)}/whep`, {
    method: "POST",
    headers: authorized({ "Content-Type": "application/sdp" }),
    body: pc.localDescription.sdp,
  });
  if (response.status === 401) {
    pc.close();
    askForToken("Your access token is no longer valid: sign in again");
    throw new Error("Sign in again");
  }
  if (response.status !== 201) {
    let reason = `HTTP ${response.status}`;
    try { reason = (await response.json()).error || reason; } catch (_) { /* not JSON */ }
    pc.close();
    throw new Error(`Cannot play: ${reason}`);
  }
  mark("answered");
  straja.session = new URL(response.headers.get("Location"), location.href).href;
  await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
  return straja.session;
};

/// Frames decoded so far on the current session (from getStats), for tests and the status line.
straja.framesDecoded = async function framesDecoded() {
  if (!straja.pc) return 0;
  let frames = 0;
  (await straja.pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") frames = s.framesDecoded || 0;
  });
  return frames;
};

window.addEventListener("pagehide", () => { straja.stop(); });
takeTokenFromFragment();
straja.ready = loadCameras().catch((e) => setStatus(e.message));
