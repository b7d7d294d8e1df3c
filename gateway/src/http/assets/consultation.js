// Straja consultation pages: the clinician's page (/consultation, <body data-role="host">) and the
// invitee's join page (/join, <body data-role="guest">) share this file.
//
// Both pages: a preview of the camera and a microphone level meter (WebAudio AnalyserNode),
// camera and microphone choice, mute and camera off (track.enabled), then the call over the
// signalling WebSocket of straja.consultation.v1 (gateway/src/consultation/protocol.rs): the page
// publishes its camera and microphone in one peer connection (sendonly; H.264 first, Opus) and
// subscribes to every other admitted participant in one peer connection each (recvonly), all
// answered by the gateway (an SFU: no media goes from browser to browser). A connection that stays
// disconnected or failed for STALL_MS is made afresh; a WebSocket that closes unexpectedly is
// opened again with the same token (bounded backoff). Every 2 s each connection's getStats() gives
// a quality hint (good / fair / poor). Text chat, consent to recording, the recording indicator,
// leave; the host also admits from the waiting room, starts and stops recording (once everyone
// admitted has consented) and ends the consultation.
//
// The host signs in with the camera page's sign-in (cookie) or a token in the fragment
// (#token=...); the guest's invite comes in the fragment (#invite=...). Both are removed from the
// address bar at once and never sent in a URL: the invite goes in a POST body, tokens in the
// Authorization header or the WebSocket subprotocol list ("bearer.<token>").
//
// Privacy: this file never writes to the console (names are people's, and the page's messages
// may carry them).
//
// window.consultation, for tests and debugging: you, participants (a list), recording, timings,
// chat, quality, micLevel/micPeak, remoteFramesDecoded(id), remoteAudio(id),
// selectedCandidatePair(id) (id: a participant's subscription, or "publish"), pcs, and
// dropSignalling() (closes the WebSocket as a network blip would).
"use strict";

(() => {
  const SUBPROTOCOL = "straja.consultation.v1";
  /// The clinician's access token, for this tab (the camera page uses the same key).
  const TOKEN_KEY = "straja.token";
  /// This tab's invitee: {consultation, token}, so that a reload rejoins (the invite is single use).
  const GUEST_KEY = "straja.consultation.guest";
  /// This tab's clinician: {id, invites}, so that a reload rejoins and still shows the links.
  const HOST_KEY = "straja.consultation.host";
  /// Longest wait for ICE gathering before an offer goes (no trickle ICE).
  const ICE_WAIT_MS = 1000;
  /// A peer connection disconnected or failed for this long is made afresh.
  const STALL_MS = 1500;
  /// A peer connection not connected this long after its offer went is made afresh.
  const CONNECT_TIMEOUT_MS = 10000;
  /// Backoff between fresh attempts of one peer connection (then the last one, repeatedly).
  const MEDIA_RETRY_MS = [0, 1000, 2000, 4000, 8000];
  /// Backoff between WebSocket reconnections; past the last one the page gives up.
  const RECONNECT_MS = [500, 1000, 2000, 4000, 8000, 8000, 8000, 8000, 8000, 8000];
  /// Quality hint refresh.
  const QUALITY_MS = 2000;
  const WATCHDOG_MS = 500;
  /// Close codes after which the page does not reconnect: normal closure, policy violation, and
  /// the application's own codes (refused, ended).
  const FINAL_CLOSE = (code) => code === 1000 || code === 1008 || (code >= 4000 && code < 5000);
  const VIDEO = { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 30 } };
  const AUDIO = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };

  const $ = (id) => document.getElementById(id);
  const role = document.body.dataset.role === "host" ? "host" : "guest";
  const now = () => performance.now();

  const state = {
    consultation: null,
    token: null,
    ws: null,
    welcomed: false,
    reconnectAttempt: 0,
    reconnectTimer: null,
    over: false,
    you: null,
    participants: new Map(),
    recording: "off",
    local: { stream: new MediaStream(), audio: null, video: null, muted: false, cameraOff: false },
    consentSent: false,
    publish: null,
    subs: new Map(),
    tiles: new Map(),
    retries: new Map(),
    quality: {},
    // performance.now() of: the click on join (or start), our admission, each admit click (host),
    // each participant's first picture shown.
    timings: { start: null, admitted: null, admitClicked: {}, firstFrame: {} },
    chat: [],
    pendingChat: [],
    audioCtx: null,
    meter: null,
    micLevel: 0,
    micPeak: 0,
    identity: null,
    csrf: null,
  };

  // ---- Status, problems --------------------------------------------------------------------

  function setStatus(text) { $("status").textContent = text; }
  function showProblem(text) { $("problem").textContent = text || ""; }

  function nameOf(id) {
    if (id === state.you) return "You";
    const p = state.participants.get(id);
    return p ? p.name : "Someone who left";
  }

  // ---- Local media: preview, level meter, devices, mute, camera -----------------------------

  async function startPreview() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      showProblem("This browser cannot use a camera here (the page needs HTTPS).");
      return;
    }
    let stream = null;
    let failure = null;
    for (const constraints of [{ audio: AUDIO, video: VIDEO }, { audio: AUDIO }, { video: VIDEO }]) {
      try {
        stream = await navigator.mediaDevices.getUserMedia(constraints);
        break;
      } catch (e) {
        failure = failure || e;
        if (e && e.name === "NotAllowedError") break;
      }
    }
    if (!stream) {
      showProblem(failure && failure.name === "NotAllowedError"
        ? "Camera and microphone are blocked. Allow them in the browser's site settings, then reload."
        : "No camera or microphone could be opened. Others will not see or hear you.");
      await listDevices();
      return;
    }
    for (const track of stream.getTracks()) setLocalTrack(track);
    if (!state.local.video) showProblem("No camera could be opened: others will hear you only.");
    else if (!state.local.audio) showProblem("No microphone could be opened: others will see you only.");
    await listDevices();
  }

  /// Makes `track` the local track of its kind (replacing the one before, in the preview, the
  /// level meter and the published connection).
  function setLocalTrack(track) {
    const kind = track.kind;
    const old = state.local[kind];
    track.enabled = kind === "audio" ? !state.local.muted : !state.local.cameraOff;
    if (old) state.local.stream.removeTrack(old);
    state.local.stream.addTrack(track);
    state.local[kind] = track;
    if (kind === "video") {
      const video = $("local-video");
      video.srcObject = new MediaStream([track]);
      video.play().catch(() => {});
    } else {
      startMeter(track);
    }
    const link = state.publish;
    if (link && link.senders[kind]) link.senders[kind].replaceTrack(track).catch(() => {});
    if (old && old !== track) old.stop();
    track.addEventListener("ended", () => {
      if (state.local[kind] === track && !state.over) {
        showProblem(kind === "video" ? "The camera stopped." : "The microphone stopped.");
      }
    });
    renderSelf();
  }

  function startMeter(track) {
    stopMeter();
    const Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return;
    if (!state.audioCtx) state.audioCtx = new Context();
    const ctx = state.audioCtx;
    const source = ctx.createMediaStreamSource(new MediaStream([track]));
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 1024;
    source.connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    const meterEl = $("mic-level");
    const timer = setInterval(() => {
      analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (let i = 0; i < samples.length; i++) sum += samples[i] * samples[i];
      const rms = Math.sqrt(sum / samples.length);
      // -60 dBFS and below show as nothing, 0 dBFS as full.
      const db = 20 * Math.log10(rms || 1e-9);
      const level = Math.max(0, Math.min(1, (db + 60) / 60));
      state.micLevel = level;
      state.micPeak = Math.max(state.micPeak, level);
      meterEl.value = level;
    }, 100);
    state.meter = { source, analyser, timer };
  }

  function stopMeter() {
    if (!state.meter) return;
    clearInterval(state.meter.timer);
    state.meter.source.disconnect();
    state.meter = null;
  }

  // An AudioContext made before the user did anything starts suspended: resume it on the first
  // click or key.
  for (const type of ["pointerdown", "keydown"]) {
    document.addEventListener(type, () => {
      if (state.audioCtx && state.audioCtx.state === "suspended") state.audioCtx.resume().catch(() => {});
    }, true);
  }

  async function listDevices() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return;
    let devices = [];
    try { devices = await navigator.mediaDevices.enumerateDevices(); } catch (_) { return; }
    fillDevices($("camera-select"), devices.filter((d) => d.kind === "videoinput"),
      state.local.video, "Camera");
    fillDevices($("mic-select"), devices.filter((d) => d.kind === "audioinput"),
      state.local.audio, "Microphone");
  }

  function fillDevices(select, devices, track, noun) {
    const current = track && track.getSettings ? track.getSettings().deviceId : null;
    select.replaceChildren();
    devices.forEach((device, index) => {
      const option = document.createElement("option");
      option.value = device.deviceId;
      option.textContent = device.label || `${noun} ${index + 1}`;
      if (device.deviceId === current) option.selected = true;
      select.append(option);
    });
    if (!devices.length) {
      const option = document.createElement("option");
      option.value = "";
      option.textContent = `No ${noun.toLowerCase()} found`;
      select.append(option);
    }
    select.disabled = devices.length < 1;
  }

  async function chooseDevice(kind, deviceId) {
    if (!deviceId) return;
    const constraints = kind === "video"
      ? { video: { ...VIDEO, deviceId: { exact: deviceId } } }
      : { audio: { ...AUDIO, deviceId: { exact: deviceId } } };
    try {
      // Some browsers open one camera at a time: let the old one go first.
      if (kind === "video" && state.local.video) state.local.video.stop();
      const stream = await navigator.mediaDevices.getUserMedia(constraints);
      const track = stream.getTracks()[0];
      if (track) setLocalTrack(track);
      showProblem("");
    } catch (e) {
      showProblem(`That ${kind === "video" ? "camera" : "microphone"} could not be opened (${e.name}).`);
    }
    await listDevices();
  }

  $("camera-select").addEventListener("change", (e) => { chooseDevice("video", e.target.value); });
  $("mic-select").addEventListener("change", (e) => { chooseDevice("audio", e.target.value); });
  if (navigator.mediaDevices && "ondevicechange" in navigator.mediaDevices) {
    navigator.mediaDevices.addEventListener("devicechange", () => { listDevices(); });
  }

  function setMuted(muted) {
    state.local.muted = muted;
    if (state.local.audio) state.local.audio.enabled = !muted;
    renderSelf();
  }

  function setCameraOff(off) {
    state.local.cameraOff = off;
    if (state.local.video) state.local.video.enabled = !off;
    renderSelf();
  }

  $("mute").addEventListener("click", () => setMuted(!state.local.muted));
  $("camera").addEventListener("click", () => setCameraOff(!state.local.cameraOff));

  function renderSelf() {
    const { muted, cameraOff, audio, video } = state.local;
    const mute = $("mute");
    mute.textContent = muted ? "Unmute" : "Mute";
    mute.dataset.state = muted ? "muted" : "on";
    mute.disabled = !audio;
    const camera = $("camera");
    camera.textContent = cameraOff ? "Turn camera on" : "Turn camera off";
    camera.dataset.state = cameraOff ? "off" : "on";
    camera.disabled = !video;
    const notes = [];
    if (!audio) notes.push("no microphone");
    else if (muted) notes.push("muted");
    if (!video) notes.push("no camera");
    else if (cameraOff) notes.push("camera off");
    $("self-state").textContent = notes.join(" · ");
    const note = $("local-note");
    note.hidden = Boolean(video && !cameraOff);
    note.textContent = video ? "Camera off" : "No camera";
  }

  function stopLocalMedia() {
    stopMeter();
    for (const track of state.local.stream.getTracks()) track.stop();
    $("local-video").srcObject = null;
    if (state.audioCtx) state.audioCtx.close().catch(() => {});
    state.audioCtx = null;
  }

  // ---- Signalling ---------------------------------------------------------------------------

  function signalUrl() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}/api/v1/consultations/${encodeURIComponent(state.consultation)}/signal`;
  }

  function connect() {
    clearTimeout(state.reconnectTimer);
    state.reconnectTimer = null;
    if (state.over) return;
    const protocols = [SUBPROTOCOL];
    if (state.token) protocols.push(`bearer.${state.token}`);
    let ws;
    try {
      ws = new WebSocket(signalUrl(), protocols);
    } catch (e) {
      finish(`The page cannot open the consultation's connection (${e.name}).`);
      return;
    }
    state.ws = ws;
    state.welcomed = false;
    ws.addEventListener("message", (event) => {
      if (state.ws !== ws) return;
      let message;
      try { message = JSON.parse(event.data); } catch (_) { return; }
      handle(message);
    });
    ws.addEventListener("close", (event) => {
      if (state.ws !== ws) return;
      state.ws = null;
      if (state.over) return;
      closed(event, state.welcomed);
    });
  }

  /// The WebSocket closed without the page asking: reconnect (bounded), unless the gateway said
  /// it was final.
  function closed(event, wasWelcomed) {
    state.welcomed = false;
    if (FINAL_CLOSE(event.code)) {
      const reason = event.reason || "The consultation's connection was closed.";
      if (role === "host") sessionStorage.removeItem(HOST_KEY);
      else sessionStorage.removeItem(GUEST_KEY);
      finish(reason);
      return;
    }
    if (wasWelcomed) state.reconnectAttempt = 0;
    const delay = RECONNECT_MS[state.reconnectAttempt];
    if (delay === undefined) {
      finish("The connection to the consultation was lost and could not be made again.");
      return;
    }
    state.reconnectAttempt++;
    setStatus("Connection lost: reconnecting…");
    state.reconnectTimer = setTimeout(connect, delay);
  }

  function send(message) {
    const ws = state.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(message));
    return true;
  }

  function handle(m) {
    switch (m.type) {
      case "welcome": return onWelcome(m);
      case "participant": return onParticipant(m.participant);
      case "participant_left": return onParticipantLeft(m.participant);
      case "publish_answer": return onPublishAnswer(m.sdp);
      case "subscribe_answer": return onSubscribeAnswer(m.participant, m.sdp);
      case "chat": return onChat(m.from, m.text);
      case "recording": state.recording = m.state; return renderRecording();
      case "ended": return onEnded(m.reason);
      case "error": return showProblem(m.message);
      default: return undefined;
    }
  }

  function onWelcome(m) {
    const again = state.you !== null;
    state.welcomed = true;
    state.reconnectAttempt = 0;
    state.you = m.you;
    state.participants = new Map((m.participants || []).map((p) => [p.id, p]));
    state.recording = m.recording;
    state.consentSent = false;
    const me = state.participants.get(state.you);
    if (again && me && !me.publishing && state.publish && !state.publish.answerPending) {
      // The gateway lost our media while we were away: publish it again.
      closePublish();
    }
    if (again) {
      // Subscriptions that did not survive are made again; connected ones stay.
      for (const [id, sub] of state.subs) {
        if (sub.pc.connectionState !== "connected") closeSubscription(id, true);
      }
    }
    showProblem("");
    sync();
  }

  function onParticipant(p) {
    const before = state.participants.get(p.id);
    state.participants.set(p.id, p);
    if (p.id === state.you && before && before.presence === "waiting" && p.presence === "admitted") {
      state.timings.admitted = Math.round(now());
    }
    sync();
  }

  function onParticipantLeft(id) {
    state.participants.delete(id);
    if (id === state.you) {
      finish("You are no longer in the consultation.");
      return;
    }
    closeSubscription(id, false);
    sync();
  }

  /// Brings the page in line with the participants: the waiting room or the call, our publish
  /// connection, one subscription and tile per other participant in the call.
  function sync() {
    if (state.over) return;
    const me = state.participants.get(state.you);
    const inCall = Boolean(me && me.presence !== "waiting");
    document.body.dataset.stage = inCall ? "call" : "waiting";
    if (role === "guest") $("waiting").hidden = inCall;
    $("call-controls").hidden = false;
    $("people-panel").hidden = false;
    $("chat").hidden = !inCall;
    $("consent").hidden = !inCall;
    if (role === "host") { $("record").hidden = !inCall; $("waiting-room").hidden = false; }
    setStatus(inCall ? "In the consultation" : "Waiting for the clinician to let you in…");
    if (inCall) {
      if (!state.publish) publish();
      for (const p of state.participants.values()) {
        if (p.id === state.you) continue;
        const wanted = p.presence !== "waiting" && p.publishing;
        if (wanted && !state.subs.has(p.id)) subscribe(p.id);
        if (!wanted && state.subs.has(p.id)) closeSubscription(p.id, p.presence !== "waiting");
        if (p.presence !== "waiting") ensureTile(p.id);
      }
    }
    for (const id of [...state.tiles.keys()]) {
      const p = state.participants.get(id);
      if (!p || p.presence === "waiting" || !inCall) removeTile(id);
    }
    for (const tile of state.tiles.values()) renderTile(tile);
    renderPeople();
    renderWaitingRoom();
    renderRecording();
  }

  // ---- Peer connections ---------------------------------------------------------------------

  function waitForIceGathering(pc, ms) {
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        pc.removeEventListener("icegatheringstatechange", check);
        resolve();
      };
      const check = () => { if (pc.iceGatheringState === "complete") done(); };
      const timer = setTimeout(done, ms);
      pc.addEventListener("icegatheringstatechange", check);
    });
  }

  /// Puts H.264 (packetization-mode 1, constrained baseline first) or Opus first in the
  /// transceiver's codec list; other codecs stay, after it.
  function preferCodecs(transceiver, kind) {
    if (typeof transceiver.setCodecPreferences !== "function") return;
    const rank = (codec) => {
      const mime = codec.mimeType.toLowerCase();
      const fmtp = codec.sdpFmtpLine || "";
      if (kind === "audio") return mime === "audio/opus" ? 0 : 10;
      if (mime === "video/h264") {
        const mode = /packetization-mode=1/.test(fmtp) ? 0 : 4;
        const profile = /profile-level-id=42e0/i.test(fmtp) ? 0 : /profile-level-id=4200/i.test(fmtp) ? 1 : 2;
        return mode + profile;
      }
      if (["video/rtx", "video/red", "video/ulpfec", "video/flexfec-03"].includes(mime)) return 30;
      return 20;
    };
    for (const source of [window.RTCRtpReceiver, window.RTCRtpSender]) {
      const capabilities = source && source.getCapabilities && source.getCapabilities(kind);
      if (!capabilities) continue;
      const codecs = capabilities.codecs.slice().sort((a, b) => rank(a) - rank(b));
      try { transceiver.setCodecPreferences(codecs); return; } catch (_) { /* try the other list */ }
    }
  }

  function newPeerConnection() {
    return new RTCPeerConnection({ bundlePolicy: "max-bundle" });
  }

  /// Publishes our camera and microphone in a fresh peer connection (closing the one before).
  async function publish() {
    closePublish();
    const pc = newPeerConnection();
    const link = { kind: "publish", pc, senders: {}, offeredAt: now(), answerPending: true, downSince: null };
    state.publish = link;
    for (const kind of ["audio", "video"]) {
      const track = state.local[kind];
      const transceiver = pc.addTransceiver(track || kind, {
        direction: "sendonly", streams: [state.local.stream],
      });
      preferCodecs(transceiver, kind);
      link.senders[kind] = transceiver.sender;
    }
    pc.addEventListener("connectionstatechange", () => { if (state.publish === link) renderSelfQuality(); });
    try {
      await pc.setLocalDescription(await pc.createOffer());
      await waitForIceGathering(pc, ICE_WAIT_MS);
    } catch (e) {
      if (state.publish === link) showProblem(`Your camera and microphone could not be sent (${e.name}).`);
      return;
    }
    if (state.publish !== link) return;
    link.offeredAt = now();
    if (!send({ type: "publish", sdp: pc.localDescription.sdp })) link.answerPending = false;
  }

  async function onPublishAnswer(sdp) {
    const link = state.publish;
    if (!link || !link.answerPending) return;
    link.answerPending = false;
    try {
      await link.pc.setRemoteDescription({ type: "answer", sdp });
    } catch (e) {
      showProblem(`The gateway's answer to your media was not usable (${e.name}).`);
    }
  }

  function closePublish() {
    const link = state.publish;
    state.publish = null;
    if (link) link.pc.close();
  }

  /// Subscribes to participant `id`'s media in a fresh peer connection.
  async function subscribe(id) {
    const old = state.subs.get(id);
    if (old) old.pc.close();
    const pc = newPeerConnection();
    const audio = pc.addTransceiver("audio", { direction: "recvonly" });
    const video = pc.addTransceiver("video", { direction: "recvonly" });
    preferCodecs(audio, "audio");
    preferCodecs(video, "video");
    const sub = { kind: "subscribe", id, pc, offeredAt: now(), answerPending: true, downSince: null };
    state.subs.set(id, sub);
    const tile = ensureTile(id);
    tile.video.srcObject = new MediaStream([audio.receiver.track, video.receiver.track]);
    playTile(tile);
    pc.addEventListener("connectionstatechange", () => { if (state.subs.get(id) === sub) renderTile(tile); });
    try {
      await pc.setLocalDescription(await pc.createOffer());
      await waitForIceGathering(pc, ICE_WAIT_MS);
    } catch (e) {
      return;
    }
    if (state.subs.get(id) !== sub) return;
    sub.offeredAt = now();
    if (!send({ type: "subscribe", participant: id, sdp: pc.localDescription.sdp })) sub.answerPending = false;
  }

  async function onSubscribeAnswer(id, sdp) {
    const sub = state.subs.get(id);
    if (!sub || !sub.answerPending) return;
    sub.answerPending = false;
    try {
      await sub.pc.setRemoteDescription({ type: "answer", sdp });
    } catch (e) {
      showProblem(`The gateway's answer for ${nameOf(id)}'s media was not usable (${e.name}).`);
    }
  }

  /// Closes the subscription to `id`; `keepTile` leaves its tile (it will be subscribed again).
  function closeSubscription(id, keepTile) {
    const sub = state.subs.get(id);
    state.subs.delete(id);
    if (sub) sub.pc.close();
    if (!keepTile) removeTile(id);
  }

  /// Watches every peer connection: one that stays disconnected or failed for STALL_MS, or does
  /// not connect in CONNECT_TIMEOUT_MS, is made afresh (with backoff per connection).
  function watchdog() {
    if (state.over || !state.welcomed) return;
    const links = [];
    if (state.publish) links.push(state.publish);
    links.push(...state.subs.values());
    const t = now();
    for (const link of links) {
      const key = link.kind === "publish" ? "publish" : link.id;
      const s = link.pc.connectionState || link.pc.iceConnectionState;
      const retry = state.retries.get(key) || { attempt: 0, notBefore: 0 };
      if (s === "connected" || s === "completed") {
        link.downSince = null;
        state.retries.delete(key);
        continue;
      }
      let stale = false;
      if (s === "disconnected" || s === "failed") {
        if (link.downSince === null) link.downSince = t;
        stale = t - link.downSince > STALL_MS;
      } else {
        stale = t - link.offeredAt > CONNECT_TIMEOUT_MS;
      }
      if (!stale || t < retry.notBefore) continue;
      const wait = MEDIA_RETRY_MS[Math.min(retry.attempt + 1, MEDIA_RETRY_MS.length - 1)];
      state.retries.set(key, { attempt: retry.attempt + 1, notBefore: t + STALL_MS + wait });
      if (link.kind === "publish") publish();
      else subscribe(link.id);
    }
  }
  setInterval(watchdog, WATCHDOG_MS);

  // ---- Remote tiles -------------------------------------------------------------------------

  function ensureTile(id) {
    let tile = state.tiles.get(id);
    if (tile) return tile;
    const el = $("remote-tile").content.firstElementChild.cloneNode(true);
    el.dataset.participant = id;
    tile = {
      id,
      el,
      video: el.querySelector(".tile-video"),
      nameEl: el.querySelector(".tile-name"),
      stateEl: el.querySelector(".tile-state"),
      qualityEl: el.querySelector(".quality"),
      noteEl: el.querySelector(".tile-note"),
      soundEl: el.querySelector(".tile-sound"),
    };
    tile.soundEl.addEventListener("click", () => {
      tile.video.muted = false;
      tile.soundEl.hidden = true;
      tile.video.play().catch(() => {});
    });
    watchFirstFrame(tile);
    state.tiles.set(id, tile);
    $("stage").append(el);
    renderTile(tile);
    return tile;
  }

  /// Plays a tile with its sound; a browser that refuses sound without a click (a reload that
  /// rejoined) plays it muted and offers "Sound on".
  function playTile(tile) {
    tile.video.muted = false;
    tile.video.play().catch(() => {
      tile.video.muted = true;
      tile.soundEl.hidden = false;
      tile.video.play().catch(() => {});
    });
  }

  /// Notes when the tile shows its first picture (for the join time).
  function watchFirstFrame(tile) {
    const seen = () => {
      if (state.timings.firstFrame[tile.id] === undefined) {
        state.timings.firstFrame[tile.id] = Math.round(now());
      }
    };
    if (typeof tile.video.requestVideoFrameCallback === "function") {
      tile.video.requestVideoFrameCallback(seen);
    } else {
      tile.video.addEventListener("loadeddata", seen, { once: true });
    }
  }

  function removeTile(id) {
    const tile = state.tiles.get(id);
    if (!tile) return;
    tile.video.srcObject = null;
    tile.el.remove();
    state.tiles.delete(id);
    delete state.quality[id];
  }

  const LINK_LABELS = {
    new: "connecting…", connecting: "connecting…", disconnected: "reconnecting…",
    failed: "reconnecting…", closed: "",
  };

  function renderTile(tile) {
    const p = state.participants.get(tile.id);
    tile.nameEl.textContent = p ? p.name : "";
    const sub = state.subs.get(tile.id);
    const parts = [];
    if (p && p.role === "host") parts.push("clinician");
    if (p && p.presence === "away") parts.push("connection lost, waiting for them");
    else if (p && !p.publishing) parts.push("no camera or microphone yet");
    tile.stateEl.textContent = parts.join(" · ");
    tile.el.dataset.presence = p ? p.presence : "";
    const linkState = sub ? sub.pc.connectionState : "closed";
    const quality = state.quality[tile.id];
    showQuality(tile.qualityEl, linkState === "connected" ? quality : null, LINK_LABELS[linkState]);
    tile.noteEl.hidden = Boolean(p && p.publishing);
    tile.noteEl.textContent = p && p.presence === "away" ? "Away" : "No video";
  }

  function showQuality(el, grade, otherwise) {
    el.dataset.quality = grade || "";
    el.textContent = grade ? `Connection: ${grade}` : (otherwise ? `Connection: ${otherwise}` : "");
  }

  function renderSelfQuality() {
    const link = state.publish;
    const s = link ? link.pc.connectionState : "closed";
    showQuality($("self-quality"), s === "connected" ? state.quality.publish : null,
      link ? LINK_LABELS[s] : "");
  }

  // ---- People, waiting room, recording -----------------------------------------------------

  function renderPeople() {
    const list = $("people");
    list.replaceChildren();
    for (const p of state.participants.values()) {
      if (p.presence === "waiting" && p.id !== state.you) continue;
      const item = document.createElement("li");
      item.dataset.participant = p.id;
      const name = document.createElement("span");
      name.className = "person-name";
      name.textContent = p.id === state.you ? `${p.name} (you)` : p.name;
      const detail = document.createElement("span");
      detail.className = "person-detail";
      const bits = [p.role === "host" ? "clinician" : "guest"];
      if (p.presence !== "admitted") bits.push(p.presence);
      bits.push(p.consented ? "consented to recording" : "has not consented to recording");
      detail.textContent = bits.join(" · ");
      item.append(name, " ", detail);
      list.append(item);
    }
  }

  function renderWaitingRoom() {
    if (role !== "host") return;
    const list = $("waiting-list");
    const waiting = [...state.participants.values()].filter((p) => p.presence === "waiting");
    const shown = new Set();
    for (const p of waiting) {
      shown.add(p.id);
      if (list.querySelector(`li[data-participant="${CSS.escape(p.id)}"]`)) continue;
      const item = document.createElement("li");
      item.dataset.participant = p.id;
      const name = document.createElement("span");
      name.textContent = `${p.name} is waiting`;
      const admit = document.createElement("button");
      admit.type = "button";
      admit.textContent = "Admit";
      admit.setAttribute("aria-label", `Admit ${p.name}`);
      admit.dataset.testid = "admit";
      admit.dataset.participant = p.id;
      admit.addEventListener("click", () => {
        if (send({ type: "admit", participant: p.id })) {
          admit.disabled = true;
          state.timings.admitClicked[p.id] = Math.round(now());
          // Still waiting a while later (the gateway refused, or the socket was lost): again.
          setTimeout(() => { admit.disabled = false; }, 5000);
        }
      });
      item.append(name, " ", admit);
      list.append(item);
    }
    for (const item of [...list.children]) {
      if (!shown.has(item.dataset.participant)) item.remove();
    }
    $("waiting-empty").hidden = waiting.length > 0;
  }

  /// Everyone in the call (admitted or away: not waiting) has consented, as the gateway requires.
  function everyoneConsented() {
    const admitted = [...state.participants.values()].filter((p) => p.presence !== "waiting");
    return admitted.length > 0 && admitted.every((p) => p.consented);
  }

  function renderRecording() {
    const on = state.recording === "on";
    $("recording-indicator").hidden = !on;
    const me = state.participants.get(state.you);
    const consent = $("consent");
    const consented = Boolean(me && me.consented);
    consent.disabled = consented || state.consentSent || !state.welcomed;
    consent.textContent = consented ? "You consented to recording" : "I consent to recording";
    consent.dataset.state = consented ? "given" : "not-given";
    if (role !== "host") return;
    const record = $("record");
    const ready = everyoneConsented();
    record.textContent = on ? "Stop recording" : "Start recording";
    record.dataset.state = on ? "on" : "off";
    record.disabled = !state.welcomed || (!on && !ready);
    $("record-note").textContent = on ? "Recording. Everyone sees that it is."
      : ready ? "Everyone in the consultation consented to recording."
        : "Recording needs the consent of everyone in the consultation.";
  }

  $("consent").addEventListener("click", () => {
    if (send({ type: "consent" })) { state.consentSent = true; renderRecording(); }
  });

  // ---- Chat ---------------------------------------------------------------------------------

  $("chat-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("chat-input");
    const text = input.value.trim();
    if (!text) return;
    if (!send({ type: "chat", text })) {
      showProblem("Not connected: the message was not sent.");
      return;
    }
    input.value = "";
    // Shown at once; the gateway's copy (if it sends us our own) marks it delivered.
    const item = appendChat(state.you, text);
    item.dataset.state = "sent";
    state.pendingChat.push({ text, item });
  });

  function onChat(from, text) {
    if (from === state.you) {
      const index = state.pendingChat.findIndex((c) => c.text === text);
      if (index >= 0) {
        state.pendingChat.splice(index, 1)[0].item.dataset.state = "delivered";
        return;
      }
    }
    appendChat(from, text);
  }

  function appendChat(from, text) {
    const item = document.createElement("li");
    item.dataset.testid = "chat-message";
    item.dataset.from = from;
    const who = document.createElement("span");
    who.className = "chat-from";
    who.textContent = nameOf(from);
    const body = document.createElement("span");
    body.className = "chat-text";
    body.textContent = text;
    const time = document.createElement("time");
    const at = new Date();
    time.dateTime = at.toISOString();
    time.textContent = at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    item.append(who, ": ", body, " ", time);
    const log = $("chat-log");
    log.append(item);
    log.scrollTop = log.scrollHeight;
    state.chat.push({ from, text });
    return item;
  }

  // ---- Quality hints ------------------------------------------------------------------------

  function selectedPair(report) {
    let pair = null;
    report.forEach((s) => {
      if (s.type === "transport" && s.selectedCandidatePairId) pair = report.get(s.selectedCandidatePairId) || pair;
    });
    if (!pair) {
      report.forEach((s) => {
        if (!pair && s.type === "candidate-pair" && (s.selected || (s.nominated && s.state === "succeeded"))) pair = s;
      });
    }
    return pair;
  }

  function grade(loss, rtt, jitter) {
    if (loss > 0.08 || rtt > 0.4 || jitter > 0.06) return "poor";
    if (loss > 0.02 || rtt > 0.2 || jitter > 0.03) return "fair";
    return "good";
  }

  /// The grade of one peer connection over the last interval; `previous` holds the counters.
  async function measure(link) {
    const report = await link.pc.getStats();
    let received = 0;
    let lost = 0;
    let jitter = 0;
    let remoteLoss = null;
    let rtt = 0;
    report.forEach((s) => {
      if (s.type === "inbound-rtp") {
        received += s.packetsReceived || 0;
        lost += Math.max(0, s.packetsLost || 0);
        jitter = Math.max(jitter, s.jitter || 0);
      } else if (s.type === "remote-inbound-rtp") {
        if (typeof s.fractionLost === "number") remoteLoss = Math.max(remoteLoss || 0, s.fractionLost);
        jitter = Math.max(jitter, s.jitter || 0);
        if (typeof s.roundTripTime === "number") rtt = Math.max(rtt, s.roundTripTime);
      }
    });
    const pair = selectedPair(report);
    if (pair && typeof pair.currentRoundTripTime === "number") rtt = Math.max(rtt, pair.currentRoundTripTime);
    const before = link.counters || { received: 0, lost: 0 };
    link.counters = { received, lost };
    if (link.kind === "publish") return grade(remoteLoss || 0, rtt, jitter);
    const dReceived = received - before.received;
    const dLost = lost - before.lost;
    if (dReceived <= 0) return "poor";
    return grade(dLost / (dLost + dReceived), rtt, jitter);
  }

  async function refreshQuality() {
    if (state.over) return;
    const link = state.publish;
    if (link && link.pc.connectionState === "connected") {
      try { state.quality.publish = await measure(link); } catch (_) { /* closed meanwhile */ }
    }
    renderSelfQuality();
    for (const [id, sub] of state.subs) {
      if (sub.pc.connectionState !== "connected") continue;
      try { state.quality[id] = await measure(sub); } catch (_) { /* closed meanwhile */ }
      const tile = state.tiles.get(id);
      if (tile) renderTile(tile);
    }
  }
  setInterval(() => { refreshQuality(); }, QUALITY_MS);

  // ---- Stats for tests ----------------------------------------------------------------------

  function linkOf(id) {
    if (id === "publish") return state.publish;
    return state.subs.get(id) || null;
  }

  async function inbound(id, kind) {
    const link = linkOf(id);
    if (!link) return null;
    let found = null;
    (await link.pc.getStats()).forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === kind) found = s;
    });
    return found;
  }

  function candidate(c) {
    if (!c) return null;
    return { address: c.address || c.ip || null, port: c.port, type: c.candidateType, protocol: c.protocol };
  }

  // ---- Leave, end ---------------------------------------------------------------------------

  /// Ends the page's part: connections closed, camera and microphone released, the reason shown.
  function finish(reason) {
    if (state.over) return;
    state.over = true;
    clearTimeout(state.reconnectTimer);
    const ws = state.ws;
    state.ws = null;
    if (ws) ws.close(1000);
    closePublish();
    for (const id of [...state.subs.keys()]) closeSubscription(id, false);
    for (const id of [...state.tiles.keys()]) removeTile(id);
    stopLocalMedia();
    document.body.dataset.stage = "over";
    for (const id of ["call-controls", "chat", "devices", "self-tile", "lobby", "waiting",
      "people-panel"]) {
      const el = $(id);
      if (el) el.hidden = true;
    }
    if (role === "host") {
      for (const id of ["waiting-room", "invites", "start-form"]) $(id).hidden = true;
    }
    $("recording-indicator").hidden = true;
    $("ended-reason").textContent = reason;
    $("ended").hidden = false;
    setStatus("Not in a consultation");
  }

  function onEnded(reason) {
    sessionStorage.removeItem(role === "host" ? HOST_KEY : GUEST_KEY);
    finish(reason || "The consultation has ended.");
  }

  // The guest's leave (the clinician's page has `end` only: the clinician leaving ends it).
  $("leave") && $("leave").addEventListener("click", () => {
    send({ type: "leave" });
    sessionStorage.removeItem(role === "host" ? HOST_KEY : GUEST_KEY);
    finish("You left the consultation.");
  });

  window.addEventListener("pagehide", () => {
    // A reload or a closed tab: the gateway shows us away; a reload rejoins from sessionStorage.
    closePublish();
    for (const sub of state.subs.values()) sub.pc.close();
  });

  // ---- The clinician's page -----------------------------------------------------------------

  function authorized(headers = {}, write = false) {
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) return { ...headers, Authorization: `Bearer ${token}` };
    if (write && state.csrf) return { ...headers, "X-CSRF-Token": state.csrf };
    return headers;
  }

  async function reasonOf(response) {
    try { return (await response.json()).error || `HTTP ${response.status}`; } catch (_) {
      return `HTTP ${response.status}`;
    }
  }

  function takeFromFragment(name) {
    const match = location.hash.match(new RegExp(`(?:^#|&)${name}=([^&]+)`));
    if (location.hash) history.replaceState(null, "", location.pathname + location.search);
    return match ? decodeURIComponent(match[1]) : null;
  }

  function needSignIn(reason) {
    $("signin-reason").textContent = reason || "";
    $("signin-needed").hidden = false;
    setStatus("Not signed in");
  }

  async function hostStart() {
    const token = takeFromFragment("token");
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    let response;
    try {
      response = await fetch("/api/v1/session", { headers: authorized() });
    } catch (e) {
      setStatus("The gateway cannot be reached");
      return;
    }
    if (response.status === 401) {
      const reason = sessionStorage.getItem(TOKEN_KEY) ? await reasonOf(response) : "";
      sessionStorage.removeItem(TOKEN_KEY);
      needSignIn(reason);
      return;
    }
    if (!response.ok) { setStatus(`Session: ${await reasonOf(response)}`); return; }
    const identity = await response.json();
    state.identity = identity;
    state.csrf = identity.csrf_token || null;
    if (identity.role !== "clinician") {
      needSignIn(`This page is for clinicians; you are signed in as ${identity.role}.`);
      return;
    }
    state.token = sessionStorage.getItem(TOKEN_KEY);
    $("devices").hidden = false;
    $("self-tile").hidden = false;
    await startPreview();
    const saved = readJson(HOST_KEY);
    if (saved && saved.id) {
      showInvites(saved.invites || []);
      state.consultation = saved.id;
      state.timings.start = Math.round(now());
      setStatus("Rejoining the consultation…");
      connect();
      return;
    }
    $("start-form").hidden = false;
    setStatus("Ready to start a consultation");
  }

  function readJson(key) {
    try { return JSON.parse(sessionStorage.getItem(key) || "null"); } catch (_) { return null; }
  }

  async function createConsultation(event) {
    event.preventDefault();
    const button = $("start");
    button.disabled = true;
    showProblem("");
    const name = $("host-name").value.trim();
    const invites = [...document.querySelectorAll(".invite-label")]
      .map((input) => input.value.trim())
      .filter((label) => label)
      .map((label) => ({ label }));
    const body = { invites };
    if (name) body.name = name;
    state.timings.start = Math.round(now());
    setStatus("Starting the consultation…");
    let response;
    try {
      response = await fetch("/api/v1/consultations", {
        method: "POST",
        headers: authorized({ "Content-Type": "application/json" }, true),
        body: JSON.stringify(body),
      });
    } catch (e) {
      button.disabled = false;
      showProblem("The gateway cannot be reached.");
      return;
    }
    if (response.status !== 201) {
      button.disabled = false;
      const reason = await reasonOf(response);
      if (response.status === 401) { needSignIn(reason); $("start-form").hidden = true; return; }
      showProblem(`The consultation could not be started: ${reason}`);
      setStatus("Ready to start a consultation");
      return;
    }
    const created = await response.json();
    state.consultation = created.id;
    sessionStorage.setItem(HOST_KEY, JSON.stringify({ id: created.id, invites: created.invites }));
    $("start-form").hidden = true;
    showInvites(created.invites || []);
    setStatus("Connecting…");
    connect();
  }

  function showInvites(invites) {
    const list = $("invite-list");
    list.replaceChildren();
    invites.forEach((invite, index) => {
      const item = $("invite-item").content.firstElementChild.cloneNode(true);
      const input = item.querySelector(".invite-link");
      const label = item.querySelector(".invite-name");
      input.id = `invite-link-${index + 1}`;
      label.htmlFor = input.id;
      label.textContent = `Link for ${invite.label}`;
      input.value = new URL(invite.url, location.origin).href;
      input.dataset.label = invite.label;
      const expires = item.querySelector(".invite-expires");
      const at = new Date(invite.expires_at);
      if (!Number.isNaN(at.getTime())) {
        expires.dateTime = at.toISOString();
        expires.textContent = `valid once, until ${at.toLocaleString()}`;
      }
      const copy = item.querySelector(".invite-copy");
      copy.setAttribute("aria-label", `Copy the link for ${invite.label}`);
      copy.addEventListener("click", async () => {
        input.select();
        let copied = false;
        try { await navigator.clipboard.writeText(input.value); copied = true; } catch (_) {
          try { copied = document.execCommand("copy"); } catch (__) { copied = false; }
        }
        copy.textContent = copied ? "Copied" : "Select and copy the link";
        setTimeout(() => { copy.textContent = "Copy link"; }, 3000);
      });
      list.append(item);
    });
    $("invites").hidden = invites.length === 0;
  }

  $("end") && $("end").addEventListener("click", async () => {
    const id = state.consultation;
    const ended = send({ type: "end" });
    sessionStorage.removeItem(HOST_KEY);
    if (!ended && id) {
      await fetch(`/api/v1/consultations/${encodeURIComponent(id)}`, {
        method: "DELETE", headers: authorized({}, true),
      }).catch(() => {});
    }
    // The gateway's `ended` follows; do not wait for it to let the camera go.
    setTimeout(() => finish("You ended the consultation."), ended ? 2000 : 0);
  });

  $("record") && $("record").addEventListener("click", () => {
    send({ type: "record", on: state.recording !== "on" });
  });

  // ---- The invitee's page -------------------------------------------------------------------

  async function guestStart() {
    const invite = takeFromFragment("invite");
    const saved = readJson(GUEST_KEY);
    $("devices").hidden = false;
    $("self-tile").hidden = false;
    $("lobby").hidden = false;
    const join = $("join");
    if (!invite && !(saved && saved.token)) {
      $("join-reason").textContent =
        "This page needs the link you were sent. Open that link again, or ask for a new one.";
      join.disabled = true;
    }
    setStatus("Check your camera and microphone, then join");
    join.addEventListener("click", () => { joinWith(invite, saved); });
    await startPreview();
    renderSelf();
  }

  async function joinWith(invite, saved) {
    const join = $("join");
    join.disabled = true;
    $("join-reason").textContent = "";
    state.timings.start = Math.round(now());
    if (invite) {
      setStatus("Joining…");
      let response;
      try {
        response = await fetch("/api/v1/consultations/join", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ invite }),
        });
      } catch (e) {
        join.disabled = false;
        $("join-reason").textContent = "The gateway cannot be reached. Try again.";
        setStatus("Not joined");
        return;
      }
      if (!response.ok) {
        const reason = await reasonOf(response);
        $("join-reason").textContent = response.status === 410
          ? `This link can no longer be used: ${reason}`
          : `You could not join: ${reason}`;
        setStatus("Not joined");
        return;
      }
      const joined = await response.json();
      state.consultation = joined.consultation;
      state.token = joined.token;
      sessionStorage.setItem(GUEST_KEY, JSON.stringify(joined));
    } else if (saved) {
      state.consultation = saved.consultation;
      state.token = saved.token;
    }
    $("lobby").hidden = true;
    $("waiting").hidden = false;
    setStatus("Connecting…");
    connect();
  }

  // ---- window.consultation ------------------------------------------------------------------

  const api = {
    remoteFramesDecoded: async (id) => {
      const s = await inbound(id, "video");
      return s ? s.framesDecoded || 0 : 0;
    },
    remoteAudio: async (id) => {
      const s = await inbound(id, "audio");
      return s ? {
        packetsReceived: s.packetsReceived || 0,
        totalAudioEnergy: s.totalAudioEnergy || 0,
        audioLevel: s.audioLevel || 0,
      } : { packetsReceived: 0, totalAudioEnergy: 0, audioLevel: 0 };
    },
    /// Drops the signalling socket as a network blip would (the page reconnects by itself).
    dropSignalling: () => {
      if (state.ws) state.ws.close(3000, "dropped for a test");
      return true;
    },
    selectedCandidatePair: async (id) => {
      const link = linkOf(id);
      if (!link) return null;
      const report = await link.pc.getStats();
      const pair = selectedPair(report);
      if (!pair) return null;
      return {
        state: pair.state,
        local: candidate(report.get(pair.localCandidateId)),
        remote: candidate(report.get(pair.remoteCandidateId)),
      };
    },
  };
  for (const [name, get] of Object.entries({
    you: () => state.you,
    consultationId: () => state.consultation,
    participants: () => [...state.participants.values()].map((p) => ({ ...p })),
    recording: () => state.recording,
    timings: () => JSON.parse(JSON.stringify(state.timings)),
    chat: () => state.chat.map((c) => ({ ...c })),
    quality: () => ({ ...state.quality }),
    micLevel: () => state.micLevel,
    micPeak: () => state.micPeak,
    connected: () => state.welcomed,
    over: () => state.over,
    local: () => ({
      audio: Boolean(state.local.audio), video: Boolean(state.local.video),
      muted: state.local.muted, cameraOff: state.local.cameraOff,
    }),
    pcs: () => ({
      publish: state.publish ? state.publish.pc : null,
      subscriptions: Object.fromEntries([...state.subs].map(([id, sub]) => [id, sub.pc])),
    }),
  })) {
    Object.defineProperty(api, name, { get, enumerable: true });
  }
  window.consultation = api;

  renderSelf();
  if (role === "host") {
    $("start-form").addEventListener("submit", createConsultation);
    api.ready = hostStart();
  } else {
    api.ready = guestStart();
  }
})();
