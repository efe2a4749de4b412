// jukesep web page: upload a song, follow its job, play and download the stems.
// Plain JS, no build step. Playback uses the Web Audio API: every track's compressed preview (Opus,
// a tenth of the wav) is decoded into an AudioBuffer and all sources start at the same AudioContext
// time, so the stems stay sample-locked; the lossless files are only for downloads.
"use strict";

const $ = (id) => document.getElementById(id);
const RECENT_KEY = "jukesep.recent";
const FORMAT_KEY = "jukesep.format";
const POLL_MS = 700;
const STEM_ORDER = ["vocals", "drums", "bass", "other", "no_vocals"];
const LABELS = { mixture: "Original mix", no_vocals: "No vocals" };

const state = {
  config: null,
  jobId: null,
  pollTimer: null,
  engine: null,
  uploading: false,
};

// ---------- helpers ----------
function fmtTime(seconds) {
  if (!isFinite(seconds) || seconds < 0) seconds = 0;
  const m = Math.floor(seconds / 60);
  const s = Math.floor(seconds % 60);
  return `${m}:${String(s).padStart(2, "0")}`;
}

function fmtDuration(seconds) {
  if (seconds == null) return "";
  return seconds < 60 ? `${seconds.toFixed(1)} s` : fmtTime(seconds);
}

function fmtBytes(n) {
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

function plural(n, word) { return `${n} ${word}${n === 1 ? "" : "s"}`; }

function show(el, visible) { el.hidden = !visible; }

async function api(path, options) {
  const response = await fetch(path, options);
  let body = null;
  try { body = await response.json(); } catch (_) { /* empty body */ }
  if (!response.ok) {
    const err = new Error((body && body.error) || `request failed (HTTP ${response.status})`);
    err.status = response.status;
    throw err;
  }
  return body;
}

// ---------- recent jobs (only this browser knows its job ids) ----------
function recentJobs() {
  try { return JSON.parse(localStorage.getItem(RECENT_KEY)) || []; } catch (_) { return []; }
}
function saveRecent(list) { localStorage.setItem(RECENT_KEY, JSON.stringify(list.slice(0, 20))); }
function rememberJob(job) {
  saveRecent([{ id: job.id, name: job.name, created: job.created }, ...recentJobs().filter((j) => j.id !== job.id)]);
}
function forgetJob(id) { saveRecent(recentJobs().filter((j) => j.id !== id)); }

async function renderRecent() {
  const list = $("recent-list");
  const jobs = recentJobs();
  list.replaceChildren();
  show($("recent"), jobs.length > 0);
  for (const item of jobs) {
    const li = document.createElement("li");
    const a = document.createElement("a");
    a.href = `#/job/${encodeURIComponent(item.id)}`;
    const name = document.createElement("span");
    name.className = "recent-name";
    name.textContent = item.name;
    const when = document.createElement("span");
    when.className = "muted small";
    when.textContent = new Date(item.created * 1000).toLocaleString();
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = "…";
    a.append(name, when, badge);
    li.append(a);
    list.append(li);
    api(`/api/jobs/${encodeURIComponent(item.id)}`).then((job) => {
      badge.className = `badge ${job.status}`;
      badge.textContent = { queued: "queued", running: "separating", done: "ready", failed: "failed" }[job.status];
    }).catch((err) => {
      if (err.status === 404) { forgetJob(item.id); li.remove(); show($("recent"), recentJobs().length > 0); }
    });
  }
}

// ---------- home: upload ----------
function setHomeError(message) {
  $("home-error").textContent = message || "";
  show($("home-error"), Boolean(message));
}

function uploadFile(file) {
  if (state.uploading || !file) return;
  setHomeError("");
  const cfg = state.config;
  if (cfg && file.size > cfg.max_upload_mb * 1024 * 1024) {
    setHomeError(`${file.name} is ${fmtBytes(file.size)}; the upload limit is ${cfg.max_upload_mb} MB.`);
    return;
  }
  if (file.size === 0) {
    setHomeError(`${file.name} is empty (0 bytes).`);
    return;
  }
  state.uploading = true;
  $("dropzone").classList.add("busy");
  $("upload-name").textContent = file.name;
  $("upload-percent").textContent = "0%";
  $("upload-bar").style.width = "0%";
  $("upload-detail").textContent = `Uploading ${fmtBytes(file.size)}…`;
  $("upload-bar").parentElement.classList.remove("indeterminate");
  show($("upload-card"), true);

  const xhr = new XMLHttpRequest();
  const stems = $("separate-choice").hidden ? "" : $("stems-choice").value;
  xhr.open("POST", stems ? `/api/jobs?stems=${encodeURIComponent(stems)}` : "/api/jobs");
  xhr.setRequestHeader("Content-Type", "application/octet-stream");
  xhr.setRequestHeader("X-Filename", encodeURIComponent(file.name));
  xhr.upload.onprogress = (e) => {
    if (!e.lengthComputable) return;
    const pct = Math.round((100 * e.loaded) / e.total);
    $("upload-bar").style.width = `${pct}%`;
    $("upload-percent").textContent = `${pct}%`;
    if (e.loaded >= e.total) {
      $("upload-detail").textContent = "Reading the song…";
      $("upload-percent").textContent = "";
      $("upload-bar").parentElement.classList.add("indeterminate");
    }
  };
  const done = () => {
    state.uploading = false;
    $("dropzone").classList.remove("busy");
    show($("upload-card"), false);
    $("file-input").value = "";
  };
  xhr.onload = () => {
    done();
    let body = null;
    try { body = JSON.parse(xhr.responseText); } catch (_) { /* not JSON */ }
    if (xhr.status === 201 && body) {
      rememberJob(body);
      location.hash = `#/job/${encodeURIComponent(body.id)}`;
    } else {
      setHomeError((body && body.error) || `The upload failed (HTTP ${xhr.status}).`);
    }
  };
  xhr.onerror = () => {
    done();
    setHomeError("The upload failed: the server could not be reached (or it closed the connection).");
  };
  xhr.send(file);
}

function setupDropzone() {
  const zone = $("dropzone");
  const input = $("file-input");
  input.addEventListener("change", () => uploadFile(input.files[0]));
  zone.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); }
  });
  let depth = 0;
  zone.addEventListener("dragenter", (e) => { e.preventDefault(); depth++; zone.classList.add("dragging"); });
  zone.addEventListener("dragover", (e) => { e.preventDefault(); e.dataTransfer.dropEffect = "copy"; });
  zone.addEventListener("dragleave", () => { if (--depth <= 0) { depth = 0; zone.classList.remove("dragging"); } });
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    depth = 0;
    zone.classList.remove("dragging");
    const file = e.dataTransfer.files && e.dataTransfer.files[0];
    if (file) uploadFile(file);
  });
  // a file dropped anywhere else on the home page is uploaded too (instead of the browser opening it)
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => {
    e.preventDefault();
    if (!$("home").hidden && e.dataTransfer.files && e.dataTransfer.files[0]) uploadFile(e.dataTransfer.files[0]);
  });
}

// ---------- job view ----------
function stopPolling() {
  if (state.pollTimer) clearTimeout(state.pollTimer);
  state.pollTimer = null;
}

function renderJobHead(job) {
  $("job-name").textContent = job.name;
  document.title = `${job.name} — jukesep`;
  const meta = [];
  if (job.duration != null) meta.push(fmtDuration(job.duration));
  if (job.rate) meta.push(`${(job.rate / 1000).toFixed(1)} kHz`);
  if (job.channels) meta.push(job.channels === 1 ? "mono" : job.channels === 2 ? "stereo" : `${job.channels} channels`);
  $("job-meta").textContent = meta.join(" · ");
  const labels = { queued: "Queued", running: "Separating", done: "Stems ready", failed: "Failed" };
  $("job-status").textContent = labels[job.status] || job.status;
  $("note").textContent = job.note || "";
  show($("note"), Boolean(job.note) && job.status !== "done");
}

function renderProgress(job) {
  const bar = $("progress-bar");
  const track = bar.parentElement;
  if (job.status === "queued") {
    const ahead = job.queue_ahead || 0;
    $("progress-title").textContent = ahead > 0 ? `Waiting in line — position ${ahead + 1}` : "Next in line";
    $("progress-detail").textContent = ahead > 0
      ? `${plural(ahead, "song")} ahead of yours. This page updates by itself.`
      : "Starting as soon as a worker is free.";
    $("progress-percent").textContent = "";
    track.classList.add("indeterminate");
  } else if (job.status === "running") {
    const p = job.progress || { phase: "decoding", fraction: 0 };
    track.classList.remove("indeterminate");
    const pct = progressPercent(p);
    bar.style.width = `${pct.toFixed(1)}%`;
    $("progress-percent").textContent = `${Math.floor(pct)}%`;
    $("progress-title").textContent = STAGE_TITLES[p.phase] || "Working…";
    $("progress-card").dataset.stage = p.phase;
    $("progress-detail").textContent = progressDetail(p);
  }
}

const STAGE_TITLES = {
  decoding: "Decoding the song…", separating: "Separating the stems…",
  refining: "Refining the stems…", writing: "Writing the files…",
};

function progressPercent(p) {
  if (p.phase === "separating") return 2 + 93 * (p.fraction || 0);
  return { decoding: 1, refining: 96, writing: 98 }[p.phase] ?? 1;
}

// Time left, rounded coarser as it grows: the server's estimate is smooth, this keeps the text calm.
function fmtEta(seconds) {
  if (seconds < 10) return "a few seconds";
  if (seconds < 60) return `about ${Math.ceil(seconds / 5) * 5} s`;
  return `about ${fmtTime(Math.ceil(seconds / 10) * 10)}`;
}

function progressDetail(p) {
  if (!p.total) return "";
  if (p.phase === "separating") {
    let text = `${fmtTime(p.done)} of ${fmtTime(p.total)} of audio separated`;
    if (p.eta != null) text += ` · ${fmtEta(p.eta)} left`;
    return text;
  }
  if (p.phase === "refining") return `All ${fmtTime(p.total)} separated; now making the stems add up to the song`;
  if (p.phase === "writing") return "Writing the stems and the previews for playback";
  return "";
}

async function pollJob(id) {
  if (state.jobId !== id) return;
  let job;
  try {
    job = await api(`/api/jobs/${encodeURIComponent(id)}`);
  } catch (err) {
    if (state.jobId !== id) return;
    if (err.status === 404) {
      forgetJob(id);
      showJobError("This job does not exist (it may have expired or been deleted).");
      show($("progress-card"), false);
      return;
    }
    // the server may be restarting: keep trying
    $("progress-detail").textContent = "Connection lost — retrying…";
    state.pollTimer = setTimeout(() => pollJob(id), POLL_MS * 3);
    return;
  }
  if (state.jobId !== id) return;
  rememberJob(job);
  renderJobHead(job);
  if (job.status === "queued" || job.status === "running") {
    show($("progress-card"), true);
    renderProgress(job);
    state.pollTimer = setTimeout(() => pollJob(id), POLL_MS);
  } else if (job.status === "failed") {
    show($("progress-card"), false);
    showJobError(job.error || "The separation failed.");
  } else if (job.status === "done") {
    show($("progress-card"), false);
    showResult(job);
  }
}

function showJobError(message) {
  $("job-error").textContent = message;
  show($("job-error"), true);
}

function openJob(id) {
  stopPolling();
  if (state.engine) { state.engine.destroy(); state.engine = null; }
  state.jobId = id;
  show($("home"), false);
  show($("job"), true);
  show($("player"), false);
  show($("zip-link"), false);
  show($("job-error"), false);
  show($("note"), false);
  show($("progress-card"), false);
  $("job-name").textContent = "";
  $("job-meta").textContent = "";
  $("job-status").textContent = "";
  $("progress-bar").style.width = "0%";
  pollJob(id);
}

async function deleteJob() {
  const id = state.jobId;
  if (!id || !confirm("Delete this song and its stems from the server?")) return;
  try {
    await api(`/api/jobs/${encodeURIComponent(id)}`, { method: "DELETE" });
  } catch (err) {
    if (err.status !== 404) { showJobError(err.message); return; }
  }
  forgetJob(id);
  location.hash = "#/";
}

// ---------- result: tracks, waveforms, playback ----------
function drawWave(canvas, peaks, color, width, height, scale) {
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.max(1, Math.round(width * dpr));
  canvas.height = Math.max(1, Math.round(height * dpr));
  canvas.style.width = `${width}px`;
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, width, height);
  ctx.fillStyle = color;
  const step = 3;
  const bars = Math.max(1, Math.floor(width / step));
  const mid = height / 2;
  for (let i = 0; i < bars; i++) {
    const from = Math.floor((i * peaks.length) / bars);
    const to = Math.max(from + 1, Math.floor(((i + 1) * peaks.length) / bars));
    let amp = 0;
    for (let j = from; j < to && j < peaks.length; j++) {
      amp = Math.max(amp, peaks[j][1], -peaks[j][0]);
    }
    const half = Math.max(0.75, Math.min(mid - 1, amp * scale * (mid - 1)));
    ctx.fillRect(i * step, mid - half, 2, 2 * half);
  }
}

const MIN_VIEW_SECONDS = 1; // the deepest zoom
const MIN_LOOP_SECONDS = 0.1;
const DRAG_PIXELS = 4; // a press that moves further than this draws a loop instead of seeking

// [min, max] per bar of the decoded audio in view.start..view.end (the server's peaks are too coarse zoomed in)
function bufferPeaks(buffer, view, bars) {
  const rate = buffer.sampleRate;
  const channels = Array.from({ length: buffer.numberOfChannels }, (_, c) => buffer.getChannelData(c));
  const first = Math.floor(view.start * rate);
  const per = Math.max(1, ((view.end - view.start) * rate) / bars);
  const out = [];
  for (let i = 0; i < bars; i++) {
    let lo = 0, hi = 0;
    const end = Math.min(buffer.length, Math.floor(first + (i + 1) * per));
    for (let j = Math.floor(first + i * per); j < end; j++) {
      for (const data of channels) { const v = data[j]; if (v < lo) lo = v; if (v > hi) hi = v; }
    }
    out.push([lo, hi]);
  }
  return out;
}

// ---------- spectrogram of one track over the view: one FFT per pixel column ----------
const FFT_SIZE = 2048;
const SPEC_LOW_HZ = 30; // the lowest frequency shown; rows are spaced logarithmically, as pitch is

const TWIDDLE = Array.from({ length: FFT_SIZE / 2 }, (_, k) => [Math.cos((-2 * Math.PI * k) / FFT_SIZE),
  Math.sin((-2 * Math.PI * k) / FFT_SIZE)]);

function fft(re, im) { // in place, radix 2, FFT_SIZE points
  const n = re.length;
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) { [re[i], re[j]] = [re[j], re[i]]; [im[i], im[j]] = [im[j], im[i]]; }
  }
  for (let len = 2; len <= n; len <<= 1) {
    const stride = n / len;
    for (let i = 0; i < n; i += len) {
      for (let k = 0; k < len / 2; k++) {
        const [wr, wi] = TWIDDLE[k * stride];
        const a = i + k, b = a + len / 2;
        const xr = re[b] * wr - im[b] * wi, xi = re[b] * wi + im[b] * wr;
        re[b] = re[a] - xr; im[b] = im[a] - xi;
        re[a] += xr; im[a] += xi;
      }
    }
  }
}

// dB magnitudes [columns][FFT_SIZE / 2] of `buffer` (channels averaged) at evenly spaced times of `view`
function spectrogram(buffer, view, columns) {
  const rate = buffer.sampleRate;
  const channels = Array.from({ length: buffer.numberOfChannels }, (_, c) => buffer.getChannelData(c));
  const window = Float32Array.from({ length: FFT_SIZE }, (_, i) => 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / FFT_SIZE));
  const out = [];
  for (let c = 0; c < columns; c++) {
    const centre = Math.floor((view.start + ((c + 0.5) / columns) * (view.end - view.start)) * rate);
    const re = new Float32Array(FFT_SIZE), im = new Float32Array(FFT_SIZE);
    for (let i = 0; i < FFT_SIZE; i++) {
      const j = centre - FFT_SIZE / 2 + i;
      if (j < 0 || j >= buffer.length) continue;
      let v = 0;
      for (const data of channels) v += data[j];
      re[i] = (v / channels.length) * window[i];
    }
    fft(re, im);
    const mags = new Float32Array(FFT_SIZE / 2);
    for (let k = 0; k < FFT_SIZE / 2; k++) mags[k] = 10 * Math.log10(re[k] * re[k] + im[k] * im[k] + 1e-10);
    out.push(mags);
  }
  return out;
}

function drawSpectrogram(engine) {
  const box = $("spectrogram");
  if (box.hidden) return;
  const track = engine.selected || engine.tracks[0];
  if (!track || !track.buffer) return;
  const canvas = $("spectrogram-canvas");
  const width = Math.max(1, canvas.clientWidth), height = Math.max(1, canvas.clientHeight);
  canvas.width = width;
  canvas.height = height;
  const columns = spectrogram(track.buffer, engine.view, width);
  const nyquist = track.buffer.sampleRate / 2;
  const image = canvas.getContext("2d").createImageData(width, height);
  // 70 dB of range below the loudest point in view: a quiet stem is as readable as a loud one
  let top = -Infinity;
  for (const column of columns) for (const v of column) if (v > top) top = v;
  const floor = top - 70;
  for (let y = 0; y < height; y++) {
    const hz = SPEC_LOW_HZ * Math.pow(nyquist / SPEC_LOW_HZ, 1 - y / (height - 1 || 1));
    const bin = Math.min(FFT_SIZE / 2 - 1, Math.round((hz / nyquist) * (FFT_SIZE / 2)));
    for (let x = 0; x < width; x++) {
      const level = Math.max(0, Math.min(1, (columns[x][bin] - floor) / 70));
      const at = 4 * (y * width + x);
      image.data[at] = 255 * Math.min(1, level * 1.6);
      image.data[at + 1] = 255 * Math.max(0, level - 0.35) * 1.5;
      image.data[at + 2] = 90 * Math.min(1, level * 3) * (1 - level) + 40 * level;
      image.data[at + 3] = 255;
    }
  }
  canvas.getContext("2d").putImageData(image, 0, 0);
  $("spectrogram-name").textContent = LABELS[track.info.name] || track.info.name;
  box.dataset.track = track.info.name;
  box.dataset.view = `${engine.view.start.toFixed(2)}-${engine.view.end.toFixed(2)}`;
}

class Engine {
  constructor(job, peaks) {
    this.job = job;
    this.peaks = peaks;
    this.ctx = new (window.AudioContext || window.webkitAudioContext)();
    this.master = this.ctx.createGain();
    this.master.connect(this.ctx.destination);
    this.tracks = [];
    this.mode = "stems";
    this.playing = false;
    this.startedAt = 0; // context time at which position 0 would have played
    this.pausedAt = 0;
    this.duration = (peaks && peaks.duration) || job.duration || 0;
    this.raf = null;
    this.destroyed = false;
    this.selected = null; // the stem the M and S keys act on
    this.view = { start: 0, end: this.duration }; // the part of the song the waveforms show (zoom)
    this.loop = null; // {start, end} in seconds, set by dragging across a waveform
    this.looping = false;
    this.playedLoop = null; // the loop the running sources were started with
  }

  addTrack(row, info, isMixture) {
    const gain = this.ctx.createGain();
    gain.connect(this.master);
    const track = { row, info, isMixture, gain, buffer: null, source: null, volume: 1, muted: false, solo: false };
    this.tracks.push(track);
    return track;
  }

  // `tries` > 1: a 503 (the server is busy making files on request) is tried again after its Retry-After.
  async fetchBuffer(url, tries = 1) {
    for (let attempt = 1; ; attempt++) {
      const response = await fetch(url);
      if (response.status === 503 && attempt < tries) {
        const seconds = Math.min(Number(response.headers.get("Retry-After")) || 5, 30);
        await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
        continue;
      }
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      return this.ctx.decodeAudioData(await response.arrayBuffer());
    }
  }

  // The compressed preview first; the wav when the browser cannot decode Opus (or it is missing).
  async loadTrack(t) {
    if (t.info.preview) {
      try {
        t.buffer = await this.fetchBuffer(t.info.preview);
        t.row.dataset.source = "preview";
        return;
      } catch (_) { /* fall back to the wav */ }
    }
    try {
      t.buffer = await this.fetchBuffer(t.info.url, 4);  // a busy preview falls back at once; the wav waits
      t.row.dataset.source = "wav";
    } catch (err) {
      throw new Error(`could not load ${t.info.name} (${err.message})`);
    }
  }

  async load(onEach) {
    let loaded = 0;
    await Promise.all(this.tracks.map(async (t) => {
      await this.loadTrack(t);
      t.row.dataset.duration = String(t.buffer.duration);
      t.row.dataset.loaded = "1";
      loaded++;
      onEach(loaded, this.tracks.length);
    }));
    this.duration = Math.max(...this.tracks.map((t) => t.buffer.duration));
    this.applyGains(true);
  }

  targetGain(t) {
    if (t.isMixture) return this.mode === "original" ? t.volume : 0;
    if (this.mode === "original") return 0;
    const anySolo = this.tracks.some((x) => !x.isMixture && x.solo);
    const audible = anySolo ? t.solo : !t.muted;
    return audible ? t.volume : 0;
  }

  applyGains(immediate) {
    for (const t of this.tracks) {
      const value = this.targetGain(t);
      if (immediate) t.gain.gain.value = value;
      else t.gain.gain.setTargetAtTime(value, this.ctx.currentTime, 0.015);
      t.row.classList.toggle("silenced", value === 0);
    }
    updateDownloads(this);
  }

  // What the mix download renders: each track's gain as heard now (0 for silent ones).
  mixGains() {
    return this.tracks.map((t) => [t.info.name, Math.min(2, this.targetGain(t))]).filter(([, g]) => g > 0);
  }

  stems() { return this.tracks.filter((t) => !t.isMixture); }

  position() {
    if (!this.playing) return this.pausedAt;
    let pos = this.ctx.currentTime - this.startedAt;
    const loop = this.playedLoop;
    if (loop && pos >= loop.end) pos = loop.start + ((pos - loop.start) % (loop.end - loop.start));
    return Math.min(this.duration, pos);
  }

  activeLoop() { return this.looping && this.loop ? this.loop : null; }

  async play(offset) {
    if (this.destroyed || this.tracks.some((t) => !t.buffer)) return;
    if (this.ctx.state === "suspended") await this.ctx.resume();
    this.stopSources();
    offset = Math.max(0, Math.min(offset ?? this.pausedAt, this.duration));
    if (offset >= this.duration - 0.01) offset = 0;
    const loop = this.activeLoop();
    if (loop && (offset < loop.start || offset >= loop.end)) offset = loop.start;
    const when = this.ctx.currentTime + 0.04;
    for (const t of this.tracks) {
      // every source gets the same loop points, so the stems stay sample-locked around the loop too
      const source = this.ctx.createBufferSource();
      source.buffer = t.buffer;
      source.loop = Boolean(loop);
      if (loop) { source.loopStart = loop.start; source.loopEnd = loop.end; }
      source.connect(t.gain);
      source.start(when, offset);
      t.source = source;
    }
    this.playedLoop = loop;
    this.startedAt = when - offset;
    this.playing = true;
    $("play").classList.add("playing");
    $("play").setAttribute("aria-label", "Pause");
    $("player").classList.add("started");
    this.tick();
  }

  pause() {
    if (!this.playing) return;
    this.pausedAt = this.position();
    this.stopSources();
    this.playing = false;
    $("play").classList.remove("playing");
    $("play").setAttribute("aria-label", "Play");
    this.render();
  }

  toggle() { if (this.playing) this.pause(); else this.play(); }

  seek(seconds) {
    seconds = Math.max(0, Math.min(seconds, this.duration));
    const loop = this.activeLoop();
    if (loop && (seconds < loop.start || seconds >= loop.end)) this.setLooping(false); // jumping out ends the loop
    $("player").classList.add("started");
    if (this.playing) this.play(seconds);
    else { this.pausedAt = seconds; this.render(); }
  }

  stopSources() {
    for (const t of this.tracks) {
      if (t.source) {
        try { t.source.stop(); } catch (_) { /* already stopped */ }
        t.source.disconnect();
        t.source = null;
      }
    }
  }

  tick() {
    cancelAnimationFrame(this.raf);
    const loop = () => {
      if (!this.playing || this.destroyed) return;
      if (!this.playedLoop && this.position() >= this.duration) {
        this.pause();
        this.pausedAt = 0;
        this.render();
        return;
      }
      this.render();
      this.raf = requestAnimationFrame(loop);
    };
    this.raf = requestAnimationFrame(loop);
  }

  render() {
    const pos = this.position();
    $("time-now").textContent = fmtTime(pos);
    const span = this.view.end - this.view.start;
    if (this.playing && span < this.duration && (pos > this.view.end || pos < this.view.start)) {
      this.showView(pos - span * 0.05, span); // a zoomed view turns the page with the playhead
      return;
    }
    const spec = $("spectrogram-head");
    if (!$("spectrogram").hidden) {
      const x = this.xOf(pos, $("spectrogram-canvas").clientWidth);
      spec.style.transform = `translateX(${x - 1}px)`;
    }
    for (const t of this.tracks) {
      const width = t.row.querySelector(".wave").clientWidth;
      const x = this.xOf(pos, width);
      t.row.querySelector(".wave-played").style.width = `${Math.max(0, Math.min(width, x))}px`;
      const head = t.row.querySelector(".playhead");
      head.style.transform = `translateX(${x - 1}px)`;
      head.hidden = x < 0 || x > width;
      const region = t.row.querySelector(".loop-region");
      region.hidden = !this.loop;
      if (this.loop) {
        const a = Math.max(0, this.xOf(this.loop.start, width)), b = Math.min(width, this.xOf(this.loop.end, width));
        region.style.left = `${a}px`;
        region.style.width = `${Math.max(0, b - a)}px`;
        region.classList.toggle("off", !this.looping);
      }
    }
  }

  // ---- zoom: the waveforms show view.start..view.end ----
  xOf(seconds, width) { return ((seconds - this.view.start) / (this.view.end - this.view.start)) * width; }

  timeAt(x, width) { return this.view.start + (x / width) * (this.view.end - this.view.start); }

  showView(start, span) {
    span = Math.max(Math.min(MIN_VIEW_SECONDS, this.duration), Math.min(span, this.duration));
    start = Math.max(0, Math.min(start, this.duration - span));
    this.view = { start, end: start + span };
    $("player").dataset.zoom = String(Math.round(this.duration / span));
    drawAllWaves(this);
    drawSpectrogram(this);
  }

  zoom(factor) {
    const span = (this.view.end - this.view.start) / factor;
    const pos = this.position();
    const centre = pos >= this.view.start && pos <= this.view.end ? pos : (this.view.start + this.view.end) / 2;
    this.showView(centre - span / 2, span);
  }

  // ---- loop: a region of the song played over and over ----
  setLoop(start, end) {
    if (end - start < MIN_LOOP_SECONDS) return;
    this.loop = { start: Math.max(0, start), end: Math.min(this.duration, end) };
    this.setLooping(true);
  }

  setLooping(on) {
    this.looping = Boolean(on && this.loop);
    $("loop").classList.toggle("on", this.looping);
    $("loop").setAttribute("aria-pressed", String(this.looping));
    $("loop").disabled = !this.loop;
    $("player").dataset.loop = this.loop ? (this.looping ? "on" : "off") : "";
    if (this.playing && this.playedLoop !== this.activeLoop()) this.play(this.position()); // new loop points
    else this.render();
  }

  setMute(t, on) {
    t.muted = on;
    t.row.querySelector(".mute").classList.toggle("on", on);
    this.toStems();
  }

  setSolo(t, on) {
    t.solo = on;
    t.row.querySelector(".solo").classList.toggle("on", on);
    this.toStems();
  }

  // Key N: only stem N is heard; pressing N again when it already is brings every stem back.
  soloOnly(t) {
    const alone = t.solo && this.stems().every((x) => x === t || !x.solo);
    for (const x of this.stems()) this.setSolo(x, !alone && x === t);
  }

  toStems() {
    if (this.mode !== "stems") setMode(this, "stems");
    else this.applyGains();
  }

  destroy() {
    this.destroyed = true;
    this.stopSources();
    cancelAnimationFrame(this.raf);
    this.ctx.close().catch(() => {});
  }
}

function trackColor(name) {
  const value = getComputedStyle(document.documentElement).getPropertyValue(`--${name}`).trim();
  return value || "#94a3b8";
}

function drawAllWaves(engine) {
  if (!engine || !engine.peaks) return;
  const all = engine.peaks.tracks;
  const globalPeak = Math.max(1e-6, ...Object.values(all).flat().map((p) => Math.max(-p[0], p[1])));
  const zoomed = engine.view.end - engine.view.start < engine.duration - 1e-6;
  for (const t of engine.tracks) {
    let peaks = all[t.info.name] || [];
    const own = Math.max(1e-6, ...peaks.map((p) => Math.max(-p[0], p[1])));
    // each track fills its lane, but a stem much quieter than the song still looks quieter
    const scale = 0.92 / Math.max(own, globalPeak * 0.2);
    const wave = t.row.querySelector(".wave");
    const width = wave.clientWidth;
    const height = wave.clientHeight;
    if (zoomed && t.buffer) peaks = bufferPeaks(t.buffer, engine.view, Math.max(1, Math.floor(width / 3)));
    const color = t.isMixture ? trackColor("mixture") : trackColor(t.info.name);
    drawWave(t.row.querySelector(".wave-base"), peaks, hexAlpha(color, 0.38), width, height, scale);
    drawWave(t.row.querySelector(".wave-top"), peaks, color, width, height, scale);
  }
  engine.render();
}

function hexAlpha(color, alpha) {
  const m = /^#([0-9a-f]{6})$/i.exec(color);
  if (!m) return color;
  const n = parseInt(m[1], 16);
  return `rgba(${n >> 16}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}

function buildRow(engine, info, isMixture, number) {
  const row = $("track-template").content.firstElementChild.cloneNode(true);
  row.dataset.name = info.name;
  row.classList.toggle("mixture", isMixture);
  row.querySelector(".track-label").textContent = LABELS[info.name] || info.name;
  if (number) {
    const badge = row.querySelector(".track-number");
    badge.textContent = String(number);
    badge.title = `Key ${number}: hear only this stem`;
    badge.hidden = false;
  }
  const track = engine.addTrack(row, info, isMixture);
  const mute = row.querySelector(".mute");
  const solo = row.querySelector(".solo");
  if (isMixture) {
    row.querySelector(".track-buttons").hidden = true;
  } else {
    // the row the M and S keys act on: the last one clicked, hovered or picked with the arrow keys
    row.addEventListener("pointerenter", () => selectTrack(engine, track));
    row.addEventListener("pointerdown", () => selectTrack(engine, track));
    row.addEventListener("focusin", () => selectTrack(engine, track));
  }
  mute.addEventListener("click", () => engine.setMute(track, !track.muted));
  solo.addEventListener("click", () => engine.setSolo(track, !track.solo));
  row.querySelector(".volume").addEventListener("input", (e) => {
    track.volume = parseFloat(e.target.value);
    engine.applyGains();
  });
  setupWavePointer(engine, row.querySelector(".wave"));
  return row;
}

// A click on a waveform seeks there; a drag across it sets a loop over what it covered.
function setupWavePointer(engine, wave) {
  let press = null;
  const at = (e) => {
    const rect = wave.getBoundingClientRect();
    return { x: e.clientX - rect.left, width: rect.width };
  };
  wave.addEventListener("pointerdown", (e) => {
    if (e.button !== 0) return;
    press = at(e);
    wave.setPointerCapture(e.pointerId);
  });
  wave.addEventListener("pointerup", (e) => {
    if (!press) return;
    const end = at(e);
    const from = Math.max(0, Math.min(press.x, end.x)), to = Math.min(end.width, Math.max(press.x, end.x));
    press = null;
    if (to - from > DRAG_PIXELS) {
      engine.setLoop(engine.timeAt(from, end.width), engine.timeAt(to, end.width));
    } else {
      engine.seek(engine.timeAt(end.x, end.width));
    }
  });
  wave.addEventListener("pointercancel", () => { press = null; });
}

function selectTrack(engine, track) {
  const changed = engine.selected !== track;
  engine.selected = track;
  for (const t of engine.tracks) t.row.classList.toggle("selected", t === track);
  if (changed && engine.tracks.every((t) => t.buffer)) drawSpectrogram(engine);
}

function moveSelection(engine, step) {
  const stems = engine.stems();
  if (!stems.length) return;
  const at = stems.indexOf(engine.selected);
  selectTrack(engine, stems[Math.max(0, Math.min(stems.length - 1, at < 0 ? 0 : at + step))]);
}

// ---------- downloads: format, per track, the mix as heard ----------
function downloadFormat(job) {
  const wanted = $("format").value || localStorage.getItem(FORMAT_KEY) || "wav";
  return job.formats.includes(wanted) ? wanted : "wav";
}

function updateDownloads(engine) {
  const job = engine.job;
  if (!job.formats) return;
  const fmt = downloadFormat(job);
  for (const t of engine.tracks) {
    const link = t.row.querySelector(".download");
    link.href = t.info.downloads[fmt];
    link.title = `Download ${t.info.name}.${fmt}`;
    link.querySelector("span").textContent = fmt.toUpperCase();
  }
  if (job.no_vocals) $("no-vocals-link").href = job.no_vocals.downloads[fmt];
  const gains = engine.mixGains();
  const mix = $("mix-link");
  mix.classList.toggle("disabled", gains.length === 0);
  mix.href = gains.length ? `${job.mix}.${fmt}?gains=${gains.map(([n, g]) => `${n}:${g.toFixed(2)}`).join(",")}` : "#";
}

function setupFormats(job) {
  const select = $("format");
  select.replaceChildren(...job.formats.map((f) => new Option(f.toUpperCase(), f)));
  const saved = localStorage.getItem(FORMAT_KEY);
  select.value = job.formats.includes(saved) ? saved : "wav";
}

function toggleSpectrogram(engine) {
  if (!engine || $("spectrogram-toggle").disabled) return;
  const box = $("spectrogram");
  box.hidden = !box.hidden;
  $("spectrogram-toggle").classList.toggle("on", !box.hidden);
  $("spectrogram-toggle").setAttribute("aria-pressed", String(!box.hidden));
  drawSpectrogram(engine);
  engine.render();
}

// ---------- keyboard ----------
function typing(target) {
  const tag = (target.tagName || "").toLowerCase();
  if (target.isContentEditable || tag === "textarea") return true;
  return tag === "input" && !["range", "checkbox", "radio", "button", "file"].includes(target.type);
}

function keyDigit(e) {
  const m = /^(?:Digit|Numpad)([0-9])$/.exec(e.code || "");
  if (m) return Number(m[1]);
  return /^[0-9]$/.test(e.key) ? Number(e.key) : null;
}

function onKeyDown(e) {
  const engine = state.engine;
  if (!engine || $("player").hidden || e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) return;
  if (e.code === "Space" || e.key === " ") {
    // Space is play/pause wherever the focus is: a focused button or select must not take it
    e.preventDefault();
    if (!e.repeat && !$("play").disabled) engine.toggle();
    return;
  }
  const key = (e.key || "").toLowerCase();
  const digit = keyDigit(e);
  if (key === "m" || key === "s") {
    const t = engine.selected;
    if (!t) return;
    e.preventDefault();
    if (key === "m") engine.setMute(t, !t.muted);
    else engine.setSolo(t, !t.solo);
  } else if (digit === 0) {
    e.preventDefault();
    for (const t of engine.stems()) engine.setSolo(t, false);
  } else if (digit != null) {
    const t = engine.stems()[digit - 1];
    if (!t) return;
    e.preventDefault();
    selectTrack(engine, t);
    engine.soloOnly(t);
  } else if (key === "g") {
    e.preventDefault();
    toggleSpectrogram(engine);
  } else if (key === "l") {
    e.preventDefault();
    engine.setLooping(!engine.looping);
  } else if (e.key === "+" || e.key === "=") {
    e.preventDefault();
    engine.zoom(2);
  } else if (e.key === "-" || e.key === "_") {
    e.preventDefault();
    engine.zoom(0.5);
  } else if ((e.key === "ArrowUp" || e.key === "ArrowDown") && e.target.type !== "range"
             && (e.target.tagName || "").toLowerCase() !== "select") {
    e.preventDefault();
    moveSelection(engine, e.key === "ArrowUp" ? -1 : 1);
  }
}

function onKeyUp(e) {
  // a button activates on Space's keyup: keep it from toggling mute or solo behind our back
  if (state.engine && !$("player").hidden && (e.code === "Space" || e.key === " ") && !typing(e.target)) {
    e.preventDefault();
  }
}

function setMode(engine, mode) {
  engine.mode = mode;
  $("mode-stems").classList.toggle("active", mode === "stems");
  $("mode-original").classList.toggle("active", mode === "original");
  engine.applyGains();
}

async function showResult(job) {
  $("zip-link").href = job.zip;
  show($("zip-link"), true);
  show($("no-vocals-link"), Boolean(job.no_vocals));
  setupFormats(job);
  show($("player"), true);
  $("player").classList.remove("started");
  $("play").disabled = true;
  $("play").classList.remove("playing");
  $("spectrogram-toggle").disabled = true;
  $("time-now").textContent = "0:00";
  $("time-total").textContent = fmtTime(job.duration || 0);
  const tracksEl = $("tracks");
  tracksEl.replaceChildren();

  let peaks = null;
  try { peaks = await api(job.peaks); } catch (_) { /* waveforms are optional */ }
  if (state.jobId !== job.id) return;
  const engine = new Engine(job, peaks);
  state.engine = engine;
  setMode(engine, "stems");
  // the player's tracks: the stems, and no_vocals when only vocals were separated (karaoke)
  const player = job.player || ["mixture", ...job.stems.map((s) => s.name)];
  const stems = [...job.stems, ...(job.no_vocals ? [job.no_vocals] : [])]
    .filter((s) => player.includes(s.name))
    .sort((a, b) => {
      const ia = STEM_ORDER.indexOf(a.name), ib = STEM_ORDER.indexOf(b.name);
      return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib);
    });
  tracksEl.append(buildRow(engine, job.mixture, true));
  stems.forEach((stem, i) => tracksEl.append(buildRow(engine, stem, false, i < 9 ? i + 1 : 0)));
  if (engine.stems().length) selectTrack(engine, engine.stems()[0]);
  updateDownloads(engine);
  requestAnimationFrame(() => drawAllWaves(engine));

  const loading = $("loading");
  loading.textContent = `Loading audio… 0 of ${engine.tracks.length}`;
  show(loading, true);
  try {
    await engine.load((n, total) => { loading.textContent = `Loading audio… ${n} of ${total}`; });
  } catch (err) {
    if (engine.destroyed) return;
    loading.textContent = `Could not load the audio: ${err.message}`;
    return;
  }
  if (engine.destroyed) return;
  show(loading, false);
  $("time-total").textContent = fmtTime(Math.round(engine.duration));
  engine.view = { start: 0, end: engine.duration };
  engine.setLooping(false);
  $("spectrogram-toggle").disabled = false;
  drawSpectrogram(engine);
  $("player").dataset.zoom = "1";
  $("play").disabled = false;
  $("player").dataset.ready = "1";
}

// ---------- routing and start-up ----------
function route() {
  const match = /^#\/job\/([A-Za-z0-9_-]+)$/.exec(location.hash);
  if (match) {
    openJob(match[1]);
    return;
  }
  stopPolling();
  if (state.engine) { state.engine.destroy(); state.engine = null; }
  state.jobId = null;
  document.title = "jukesep — split a song into stems";
  show($("job"), false);
  show($("home"), true);
  renderRecent();
}

// ---------- the model card: what exists in the model's metadata, nothing invented ----------
function renderModelCard(card) {
  if (!card) return;
  $("mc-name").textContent = card.name;
  show($("mc-demo-badge"), card.demo);
  $("mc-demo").textContent = card.demo_note || "";
  show($("mc-demo"), Boolean(card.demo_note));
  const facts = [["Stems", (card.stems || []).join(", ")], ["Trained on", card.data], ["Recipe", card.recipe],
    ["Training budget", card.budget], ["Refinement", card.refine && card.refine !== "none" ? card.refine : null],
    ["Notes", card.notes]];
  const dl = $("mc-facts");
  dl.replaceChildren();
  for (const [label, value] of facts) {
    if (!value) continue;
    const dt = document.createElement("dt");
    dt.textContent = label;
    const dd = document.createElement("dd");
    dd.textContent = value;
    dl.append(dt, dd);
  }
  renderScores(card.scores || []);
  show($("model-card"), true);
}

function renderScores(scores) {
  const table = $("mc-scores");
  table.replaceChildren();
  show($("mc-scores-box"), scores.length > 0);
  if (!scores.length) return;
  const stems = [...new Set(scores.flatMap((s) => Object.keys(s.sdr)))];
  const head = table.insertRow();
  for (const text of ["Test set", ...stems]) {
    const th = document.createElement("th");
    th.textContent = text;
    head.append(th);
  }
  for (const s of scores) {
    const row = table.insertRow();
    const about = [s.songs && `${s.songs} songs`, s.minutes && `${s.minutes} min`].filter(Boolean).join(", ");
    row.insertCell().textContent = about ? `${s.split} (${about})` : s.split;
    for (const stem of stems) row.insertCell().textContent = s.sdr[stem] != null ? s.sdr[stem].toFixed(2) : "–";
  }
}

async function loadConfig() {
  try {
    const cfg = await api("/api/config");
    state.config = cfg;
    $("limits").textContent = `MP3, WAV, FLAC, M4A, OGG and more · up to ${cfg.max_upload_mb} MB and ${cfg.max_minutes} minutes`;
    $("model-badge").textContent = `model: ${cfg.model}`;
    show($("model-badge"), true);
    renderModelCard(cfg.model_card);
    // karaoke needs the vocals only: offered when the model has vocals and more
    show($("separate-choice"), cfg.stems.includes("vocals") && cfg.stems.length > 1);
    $("footer").textContent = `Everything runs on this computer. Songs and stems are deleted ${cfg.retention_hours} hours after they are done.`;
  } catch (_) {
    $("footer").textContent = "The server cannot be reached.";
  }
}

document.addEventListener("DOMContentLoaded", () => {
  setupDropzone();
  $("play").addEventListener("click", () => state.engine && state.engine.toggle());
  $("mode-stems").addEventListener("click", () => state.engine && setMode(state.engine, "stems"));
  $("loop").addEventListener("click", () => state.engine && state.engine.setLooping(!state.engine.looping));
  $("zoom-in").addEventListener("click", () => state.engine && state.engine.zoom(2));
  $("zoom-out").addEventListener("click", () => state.engine && state.engine.zoom(0.5));
  $("spectrogram-toggle").addEventListener("click", () => toggleSpectrogram(state.engine));
  $("mode-original").addEventListener("click", () => state.engine && setMode(state.engine, "original"));
  $("delete-job").addEventListener("click", deleteJob);
  document.addEventListener("keydown", onKeyDown);
  document.addEventListener("keyup", onKeyUp);
  $("format").addEventListener("change", () => {
    localStorage.setItem(FORMAT_KEY, $("format").value);
    if (state.engine) updateDownloads(state.engine);
  });
  $("mix-link").addEventListener("click", (e) => { if ($("mix-link").classList.contains("disabled")) e.preventDefault(); });
  let resizeTimer = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      drawAllWaves(state.engine);
      if (state.engine) drawSpectrogram(state.engine);
    }, 120);
  });
  window.addEventListener("hashchange", route);
  loadConfig();
  route();
});
