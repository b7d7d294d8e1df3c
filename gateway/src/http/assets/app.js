// Straja camera page: signs in (user name and password, or an access token), lists cameras and
// plays one over WHEP (draft-ietf-wish-whep).
// window.straja exposes play(id), stop(), signOut() and the current RTCPeerConnection for tests
// and debugging.
"use strict";

const TOKEN_KEY = "straja.token";
const $ = (id) => document.getElementById(id);
const statusEl = $("status");
const signinEl = $("signin");
const listEl = $("cameras");
const video = $("video");
// csrf: the sign-in's CSRF token (cookie sign-ins only; never stored beyond this page).
const straja = { pc: null, session: null, camera: null, csrf: null, identity: null };
window.straja = straja;
let idleTimer = null;

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
// a changed password): the page stops the video and asks to sign in again.
async function api(path, options = {}, write = false) {
  const response = await fetch(path, { ...options, headers: authorized(options.headers, write) });
  if (response.status === 401) {
    const reason = await reasonOf(response);
    await signedOut(reason);
    throw new Error(reason);
  }
  armIdleTimer();
  return response;
}

// After the idle timeout without a request, the gateway has ended the sign-in: show it at once
// (the screen stops showing cameras) rather than at the next click.
function armIdleTimer() {
  clearTimeout(idleTimer);
  const seconds = straja.identity && straja.identity.idle_timeout_seconds;
  if (!seconds) return;
  idleTimer = setTimeout(() => {
    signedOut("You were signed out after a period of inactivity. Sign in again.");
  }, seconds * 1000 + 1000);
}

async function signedOut(reason) {
  clearTimeout(idleTimer);
  sessionStorage.removeItem(TOKEN_KEY);
  straja.csrf = null;
  straja.identity = null;
  await stopPlayback(false);
  $("viewer").hidden = true;
  $("identity").hidden = true;
  $("signout").hidden = true;
  listEl.replaceChildren();
  $("signin-reason").textContent = reason || "";
  $("password").value = "";
  signinEl.hidden = false;
  setStatus("Sign in to see the cameras");
}

function signedIn(identity) {
  straja.identity = identity;
  straja.csrf = identity.csrf_token || null;
  signinEl.hidden = true;
  $("signin-reason").textContent = "";
  $("identity").textContent = `${identity.user} · ${identity.role}`;
  $("identity").hidden = false;
  $("signout").hidden = false;
  $("viewer").hidden = false;
  armIdleTimer();
  return loadCameras();
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

straja.signOut = async function signOut() {
  const usingCookie = !sessionStorage.getItem(TOKEN_KEY);
  await stopPlayback(true);
  if (usingCookie) {
    await fetch("/api/v1/logout", { method: "POST", headers: authorized({}, true) }).catch(() => {});
  }
  await signedOut("You have signed out.");
};
$("signout").addEventListener("click", () => { straja.signOut(); });

async function loadCameras() {
  const response = await api("/api/v1/cameras");
  if (!response.ok) throw new Error(`cameras: ${await reasonOf(response)}`);
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
  setStatus(cameras.length ? "Choose a camera" : "No cameras you may view");
  return cameras;
}

// Ends the current view; `tell` also ends the session on the gateway (DELETE).
async function stopPlayback(tell) {
  const { pc, session } = straja;
  straja.pc = null;
  straja.session = null;
  if (pc) pc.close();
  video.srcObject = null;
  if (tell && session) {
    await fetch(session, { method: "DELETE", headers: authorized({}, true) }).catch(() => {});
  }
}

straja.stop = () => stopPlayback(true);

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
  let response;
  try {
    response = await api(`/api/v1/cameras/${encodeURIComponent(cameraId)}/whep`, {
      method: "POST",
      headers: { "Content-Type": "application/sdp" },
      body: pc.localDescription.sdp,
    }, true);
  } catch (e) {
    pc.close();
    throw e;
  }
  if (response.status !== 201) {
    const reason = await reasonOf(response);
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
straja.ready = whoAmI().catch((e) => setStatus(e.message));
