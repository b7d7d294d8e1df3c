// Straja recordings view: security staff go back in time. Choose a camera and a moment (in the
// browser's local time); the page lists the camera's segments around it
// (GET /api/v1/cameras/{id}/recordings), plays the segment that holds that moment from that
// moment on, and carries on with the next segment whenever one ends.
//
// A <video src> request cannot carry the page's bearer token, so each segment
// (GET /api/v1/recordings/{segment}, fragmented MP4) is fetched with the page's own sign-in
// (app.js's api(): token or cookie) into a Blob and played from an object URL. At most two
// segments are held at once: the one playing and the next one, prefetched while it plays; a
// segment's object URL is revoked as soon as it is left.
//
// Loaded after app.js, whose `straja`, api(), reasonOf(), mayWatch() and armIdleTimer() it uses.
// window.straja.recordings: open(), close(), reset() (app.js calls them), playAt(camera, date),
// and playing (the id of the segment playing) and held() (segments in memory) for tests.
"use strict";

(() => {
  /// The list covers this much before and after the chosen moment.
  const AROUND_MS = 5 * 60 * 1000;
  /// The time proposed when the view first opens: this long ago.
  const DEFAULT_AGO_MS = 5 * 60 * 1000;
  /// Segments bigger than this are not loaded into the browser's memory (export them instead).
  const MAX_SEGMENT_BYTES = 512 * 1024 * 1024;
  /// A segment being written that has grown by less than this since it was fetched is not
  /// fetched again: the player has caught up with the recording.
  const MIN_GROWTH_S = 0.5;
  /// Caught up with a recording (nothing more written yet: fragments come once a second, and a new
  /// segment is listed once its first fragment is), the page looks again this often, this many
  /// times, before it says so.
  const EDGE_RETRY_MS = 1000;
  const EDGE_RETRIES = 5;
  /// A segment that ended less than this long ago may have a successor on the way.
  const RECENT_MS = 5000;
  /// Segments kept in the list (one listing gives at most 1000); beyond, those played go first.
  const MAX_KEPT = 1500;
  const FOR_SECURITY =
    "Footage is for security staff: you can see which recordings exist, not play them.";

  const cameraEl = $("recordings-camera");
  const timeEl = $("recordings-time");
  const formEl = $("recordings-form");
  const messageEl = $("recordings-message");
  const videoEl = $("recordings-video");
  const listEl = $("recordings-list");
  const clockEl = $("recordings-clock");
  const playerEl = $("recordings-player");

  const state = {
    // Bumped by every new choice and every stop: work for an older one undoes itself.
    generation: 0,
    camera: null,
    // The camera's segments listed around the chosen moment, oldest first.
    segments: [],
    // The segment playing and its object URL.
    current: null,
    // The next segment being fetched ahead: { id, promise (of a Blob, or null), controller }.
    prefetch: null,
  };

  /// A failure to show as it is, with a kind for the message's style (`denied`, `error`, `gone`).
  class Shown extends Error {
    constructor(kind, message) { super(message); this.kind = kind; }
  }

  function say(text, kind = "info") {
    messageEl.textContent = text;
    messageEl.dataset.kind = kind;
  }

  const pad = (n, width = 2) => String(n).padStart(width, "0");

  /// A date as an <input type=datetime-local> value, in the browser's local time.
  function localInputValue(date) {
    return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
      `T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
  }

  const timeText = (ms) => new Date(ms).toLocaleString(undefined,
    { dateStyle: "short", timeStyle: "medium" });

  function durationText(seconds) {
    if (!(seconds >= 0)) return "";
    if (seconds < 60) return `${seconds.toFixed(1)} s`;
    const minutes = Math.floor(seconds / 60);
    return `${minutes} min ${Math.round(seconds - minutes * 60)} s`;
  }

  const startOf = (segment) => Date.parse(segment.start);
  const endOf = (segment) => Date.parse(segment.end);

  function cameraName(id) {
    const tile = straja.tiles.get(id);
    return tile && tile.camera ? tile.camera.name : id;
  }

  /// The select offers the cameras on the wall (those the user may see), in the wall's order.
  function fillCameras() {
    const chosen = cameraEl.value;
    const options = [...document.querySelectorAll("#wall [data-testid=camera-tile]")]
      .map((tileEl) => straja.tiles.get(tileEl.dataset.camera))
      .filter(Boolean)
      .map((tile) => {
        const option = document.createElement("option");
        option.value = tile.id;
        option.textContent = tile.camera.name;
        return option;
      });
    cameraEl.replaceChildren(...options);
    if (options.some((o) => o.value === chosen)) cameraEl.value = chosen;
  }

  // ---- Listing ---------------------------------------------------------------------------------

  async function listSegments(camera, fromMs, toMs, background) {
    const query = new URLSearchParams({
      from: new Date(Math.max(0, fromMs)).toISOString(),
      to: new Date(toMs).toISOString(),
    });
    const response = await api(
      `/api/v1/cameras/${encodeURIComponent(camera)}/recordings?${query}`, {}, false, background);
    if (response.status === 403) {
      const reason = await reasonOf(response);
      throw new Shown("denied", `Not allowed to see this camera's recordings: ${reason}`);
    }
    if (!response.ok) {
      throw new Shown("error", `The recordings could not be listed: ${await reasonOf(response)}`);
    }
    const segments = await response.json();
    if (!Array.isArray(segments)) throw new Shown("error", "The recordings list is not a list");
    return segments.filter((s) => s && typeof s.id === "string" &&
      Number.isFinite(startOf(s)) && Number.isFinite(endOf(s)));
  }

  /// Adds newly listed segments to the list (a segment listed again replaces its old entry).
  function merge(segments) {
    const byId = new Map(state.segments.map((s) => [s.id, s]));
    for (const segment of segments) byId.set(segment.id, segment);
    state.segments = [...byId.values()].sort((a, b) => startOf(a) - startOf(b));
    if (state.segments.length > MAX_KEPT) {
      const playing = state.current
        ? state.segments.indexOf(byId.get(state.current.segment.id)) : -1;
      state.segments.splice(0, Math.max(0, Math.min(playing, state.segments.length - MAX_KEPT)));
    }
  }

  function render() {
    const playing = state.current && state.current.segment.id;
    listEl.replaceChildren(...state.segments.map((segment) => {
      const item = document.createElement("li");
      item.className = "recording-item";
      item.setAttribute("data-testid", "recording-item");
      item.dataset.segment = segment.id;
      if (segment.id === playing) {
        item.setAttribute("aria-current", "true");
        item.classList.add("playing");
      }
      const button = document.createElement("button");
      button.type = "button";
      const start = document.createElement("span");
      start.className = "recording-start";
      start.textContent = timeText(startOf(segment));
      const duration = document.createElement("span");
      duration.className = "recording-duration";
      duration.textContent = durationText(Number(segment.duration_seconds));
      button.append(start, duration);
      if (segment.recording) {
        const now = document.createElement("span");
        now.className = "recording-now";
        now.textContent = "recording now";
        button.append(now);
      }
      button.addEventListener("click", () => {
        armIdleTimer();
        playChosen(state.camera, segment, 0);
      });
      item.append(button);
      return item;
    }));
  }

  function markPlaying() {
    const playing = state.current && state.current.segment.id;
    for (const item of listEl.children) {
      const current = item.dataset.segment === playing;
      item.classList.toggle("playing", current);
      if (current) item.setAttribute("aria-current", "true");
      else item.removeAttribute("aria-current");
    }
  }

  // ---- Segments in memory ----------------------------------------------------------------------

  async function fetchSegment(segment, background, signal) {
    if (Number(segment.bytes) > MAX_SEGMENT_BYTES) {
      throw new Shown("error", `This segment (${Math.round(segment.bytes / 1048576)} MB) is too ` +
        "large to play in the browser: export it with `straja recordings export`.");
    }
    const response = await api(`/api/v1/recordings/${encodeURIComponent(segment.id)}`,
      { signal }, false, background);
    if (response.status === 403) {
      throw new Shown("denied", `Not allowed to play this recording: ${await reasonOf(response)}`);
    }
    if (response.status === 404) {
      throw new Shown("gone", "This recording no longer exists (retention may have deleted it).");
    }
    if (!response.ok) {
      throw new Shown("error", `The recording could not be loaded: ${await reasonOf(response)}`);
    }
    return response.blob();
  }

  function dropPrefetch() {
    if (state.prefetch) state.prefetch.controller.abort();
    state.prefetch = null;
  }

  /// The prefetched Blob of segment `id` (or null), dropping any other prefetch.
  async function takePrefetch(id) {
    const prefetch = state.prefetch;
    if (!prefetch || prefetch.id !== id) {
      dropPrefetch();
      return null;
    }
    state.prefetch = null;
    return prefetch.promise;
  }

  /// Fetches the segment after `segment` while `segment` plays, when it is finished (a segment
  /// still being written grows: it is fetched when it is needed).
  function prefetchAfter(segment) {
    const index = state.segments.findIndex((s) => s.id === segment.id);
    const next = index >= 0 ? state.segments[index + 1] : null;
    if (!next || next.recording || segment.recording || Number(next.bytes) > MAX_SEGMENT_BYTES) {
      return;
    }
    if (state.prefetch && state.prefetch.id === next.id) return;
    dropPrefetch();
    const controller = new AbortController();
    const promise = fetchSegment(next, true, controller.signal).catch(() => null);
    state.prefetch = { id: next.id, promise, controller };
  }

  function releaseCurrent() {
    const current = state.current;
    state.current = null;
    videoEl.pause();
    videoEl.removeAttribute("src");
    videoEl.load();
    if (current) URL.revokeObjectURL(current.url);
  }

  /// Stops playback and frees every segment held.
  function stop() {
    state.generation++;
    dropPrefetch();
    releaseCurrent();
    markPlaying();
    clockEl.textContent = "";
  }

  // ---- Playing ---------------------------------------------------------------------------------

  /// Plays `segment` from `offset` seconds into it (for generation `generation`).
  async function playSegment(generation, segment, offset, background) {
    const current = () => generation === state.generation;
    const name = cameraName(state.camera);
    say(`Loading the recording of ${name} from ${timeText(startOf(segment))}…`);
    let blob = await takePrefetch(segment.id);
    if (!current()) return;
    if (!blob) blob = await fetchSegment(segment, background);
    if (!current()) return;
    releaseCurrent();
    const url = URL.createObjectURL(blob);
    state.current = { segment, url };
    markPlaying();
    playerEl.hidden = false;
    videoEl.addEventListener("loadedmetadata", () => {
      if (!current() || !state.current || state.current.url !== url) return;
      // The media fragment (#t=) already starts it there; this is for a player that ignored it.
      const duration = videoEl.duration;
      const start = Number.isFinite(duration) ? Math.min(offset, duration) : offset;
      if (start > 0 && Math.abs(videoEl.currentTime - start) > 0.1) videoEl.currentTime = start;
      videoEl.play().then(() => {
        if (current()) {
          say(`Playing ${cameraName(state.camera)}, recorded ${timeText(startOf(segment))}`,
            "playing");
        }
      }, () => {
        if (current()) say("Ready: press play on the video to start it.");
      });
      prefetchAfter(segment);
    }, { once: true });
    // Starting at the moment itself (a media fragment) rather than seeking once loaded: the first
    // frame shown is the chosen one, not the segment's first.
    videoEl.src = offset > 0 ? `${url}#t=${offset.toFixed(3)}` : url;
  }

  /// A new choice: plays `segment` of `camera` from `offset` seconds into it.
  function playChosen(camera, segment, offset) {
    if (!mayWatch()) {
      say(FOR_SECURITY, "denied");
      return;
    }
    stop();
    const generation = state.generation;
    playSegment(generation, segment, offset, false).catch((e) => failed(generation, e));
  }

  function failed(generation, error) {
    if (generation !== state.generation) return;
    if (error && error.name === "AbortError") return;
    say(error instanceof Shown ? error.message : `Playback failed: ${error.message}`,
      error instanceof Shown ? error.kind : "error");
  }

  /// Lists `camera`'s segments around `when` and plays the one holding `when` from that moment.
  async function playAt(camera, when) {
    stop();
    const generation = state.generation;
    const at = when.getTime();
    state.camera = camera;
    state.segments = [];
    render();
    say(`Looking for recordings of ${cameraName(camera)} at ${timeText(at)}…`);
    try {
      const segments = await listSegments(camera, at - AROUND_MS, at + AROUND_MS, false);
      if (generation !== state.generation) return;
      merge(segments);
      render();
      const holding = state.segments.find((s) => startOf(s) <= at && at < endOf(s));
      if (!holding) {
        say(state.segments.length
          ? `No recordings at ${timeText(at)}. The list shows what was recorded within five ` +
            "minutes of it: choose a segment to play it."
          : `No recordings of ${cameraName(camera)} within five minutes of ${timeText(at)}.`,
        "empty");
        return;
      }
      if (!mayWatch()) {
        say(FOR_SECURITY, "denied");
        return;
      }
      await playSegment(generation, holding, (at - startOf(holding)) / 1000, false);
    } catch (e) {
      failed(generation, e);
    }
  }

  /// The segment playing has ended: goes on with the rest of it (if it was being written and has
  /// grown since) or with the next segment; at the recording's edge, looks again a few times
  /// (`retries` so far).
  async function advance(retries = 0) {
    const playing = state.current;
    if (!playing) return;
    const generation = state.generation;
    const { segment } = playing;
    const played = videoEl.currentTime;
    const index = state.segments.findIndex((s) => s.id === segment.id);
    let next = index >= 0 ? state.segments[index + 1] : null;
    if (!next || segment.recording || next.recording) {
      // Newer segments (or more of this one, or of the next) may have been written since the
      // list was made.
      const from = startOf(segment);
      merge(await listSegments(state.camera, from, Math.max(Date.now(), from) + AROUND_MS, true));
      if (generation !== state.generation) return;
      render();
      const now = state.segments.find((s) => s.id === segment.id);
      if (segment.recording && now && (endOf(now) - startOf(now)) / 1000 > played + MIN_GROWTH_S) {
        await playSegment(generation, now, played, true);
        return;
      }
      next = state.segments.find((s) => startOf(s) > startOf(segment)) || null;
      const recent = segment.recording || (now && now.recording) ||
        Date.now() - endOf(now || segment) < RECENT_MS;
      if (!next && recent && retries < EDGE_RETRIES) {
        say("Waiting for more of the recording…", "waiting");
        setTimeout(() => {
          if (generation === state.generation && state.current === playing) {
            advance(retries + 1).catch((e) => failed(generation, e));
          }
        }, EDGE_RETRY_MS);
        return;
      }
    }
    if (!next) {
      say(segment.recording
        ? "You have caught up with the recording: watch the camera live, or press Play again."
        : "End of the recordings: nothing more was recorded after this.", "end");
      return;
    }
    await playSegment(generation, next, 0, true);
  }

  videoEl.addEventListener("ended", () => {
    const generation = state.generation;
    advance().catch((e) => failed(generation, e));
  });
  // The wall-clock time of the picture shown (the segment's start plus the video's time).
  videoEl.addEventListener("timeupdate", () => {
    if (!state.current) return;
    const at = startOf(state.current.segment) + videoEl.currentTime * 1000;
    clockEl.textContent = `${cameraName(state.camera)} · ${timeText(at)}` +
      (state.current.segment.recording ? " · recording now" : "");
  });
  videoEl.addEventListener("error", () => {
    if (!state.current) return;
    const code = videoEl.error ? videoEl.error.code : "?";
    say(`This recording could not be played (media error ${code}).`, "error");
  });

  // Using the player's own controls (pause, seek) is the user's activity too.
  for (const kind of ["pointerdown", "keydown"]) {
    videoEl.addEventListener(kind, () => armIdleTimer());
  }

  formEl.addEventListener("submit", (event) => {
    event.preventDefault();
    armIdleTimer();
    const camera = cameraEl.value;
    // datetime-local has no zone: the Date constructor reads it as the browser's local time.
    const when = new Date(timeEl.value);
    if (!camera) { say("Choose a camera.", "error"); return; }
    if (!timeEl.value || Number.isNaN(when.getTime())) { say("Choose a time.", "error"); return; }
    playAt(camera, when);
  });

  straja.recordings = {
    /// The view is shown: offers the cameras, and a time five minutes ago if none is chosen.
    open() {
      fillCameras();
      if (!timeEl.value) timeEl.value = localInputValue(new Date(Date.now() - DEFAULT_AGO_MS));
      if (!cameraEl.options.length) say("No cameras you may view.", "empty");
      else if (!mayWatch()) say(FOR_SECURITY, "denied");
      else if (!state.current) say("Choose a camera and a time, then Play.");
    },
    /// The view is left: playback stops and its segments are freed (the list stays).
    close() { stop(); },
    /// Signed out: nothing of the footage or of the choice stays.
    reset() {
      stop();
      state.camera = null;
      state.segments = [];
      render();
      playerEl.hidden = true;
      timeEl.value = "";
      cameraEl.replaceChildren();
      say("");
    },
    playAt,
    localInputValue,
    get playing() { return state.current ? state.current.segment.id : null; },
    /// Segments held in memory now (the one playing, the one prefetched).
    held() { return (state.current ? 1 : 0) + (state.prefetch ? 1 : 0); },
  };
})();
