// InterAct live viewer: both people of a running session (runtime/sinks/browser.py), fed over a WebSocket.
//
// Bodies: one Object3D per skeleton joint (rest offset from the header, local quaternion from each frame, the root
// joint at its world position) with a capsule per bone. Faces: a 2D canvas drawn from the 52 ARKit weights, shown
// in each person's card and as the front of the 3D head. Frames arrive in blocks (one per engine step); they are
// played at their own clock, LAG s behind the newest. The page reconnects whenever the socket drops.
import * as THREE from "./vendor/three.module.min.js"; // three.js 0.185.1 (vendor/README.md)

const LAG = 0.25; // s behind the newest frame: one engine block (6 frames = 0.2 s) plus network jitter
const MAX_BACKLOG = 1.0; // s: further behind than this (a stalled tab, a fast replay) -> jump back to LAG
const STAGE_TURN = THREE.MathUtils.degToRad(55); // each person turned this far toward the camera (a stage's cheat)
const RECONNECT_MS = [500, 1000, 2000, 5000]; // back-off after the socket drops
const COLORS = ["#f0a35e", "#6fa8ff"]; // A, B
const SKIN = "#f1cfb2";
const BARS = [
  ["jaw open", ["jawOpen"]],
  ["smile", ["mouthSmileLeft", "mouthSmileRight"]],
  ["blink", ["eyeBlinkLeft", "eyeBlinkRight"]],
  ["brows up", ["browInnerUp"]],
];
// Capsule radius (m) of the bone that ends at a joint, by the joint's name (first match wins).
const RADII = [
  [/Hand(Thumb|Index|Middle|Ring|Pinky)/, 0.009], [/Spine|Hips/, 0.075], [/Neck|Head/, 0.045],
  [/UpLeg|Leg$/, 0.062], [/Foot/, 0.048], [/Toe/, 0.035], [/Shoulder|Arm/, 0.042], [/Hand$/, 0.034],
];
const UP = new THREE.Vector3(0, 1, 0);

// What a test (or a curious user) can read from the console: window.viewer.framesReceived etc.
const viewer = (window.viewer = {
  status: "connecting", framesReceived: 0, framesShown: 0, dropped: 0, sessions: 0, time: null, webgl: false,
});

// ------------------------------------------------------------------------------------------------ the page
const $ = (id) => document.getElementById(id);
const cards = [0, 1].map(makeCard);

function makeCard(p) {
  const el = document.createElement("article");
  el.className = "person";
  el.id = `person-${p}`;
  el.innerHTML = `<canvas width="256" height="256"></canvas><div class="meta"><h2>
    <span class="swatch" style="background:${COLORS[p]}"></span><span class="name">${"AB"[p]}</span>
    <span class="speech">listening</span><span class="action">–</span></h2></div>`;
  const bars = BARS.map(([label]) => {
    const row = document.createElement("div");
    row.className = "bar";
    row.innerHTML = `<span>${label}</span><div><i style="background:${COLORS[p]}"></i></div><b>0.00</b>`;
    el.querySelector(".meta").append(row);
    return { fill: row.querySelector("i"), value: row.querySelector("b") };
  });
  $("faces").append(el);
  const canvas = el.querySelector("canvas");
  return { el, canvas, ctx: canvas.getContext("2d"), bars, speech: el.querySelector(".speech"),
           action: el.querySelector(".action"), name: el.querySelector(".name") };
}

function setStatus(text, kind) {
  viewer.status = kind;
  $("status").textContent = text;
  $("status").className = `pill ${kind}`;
}

function notice(text) {
  if (!renderer) text = "3D view needs WebGL: the faces below still update";
  $("notice").textContent = text;
  $("notice").style.display = text ? "flex" : "none";
}

// --------------------------------------------------------------------------------------------- the scene
const canvas = $("scene");
const probe = document.createElement("canvas").getContext("webgl2") || document.createElement("canvas").getContext("webgl");
const renderer = probe ? new THREE.WebGLRenderer({ canvas, antialias: true }) : null;
viewer.webgl = Boolean(renderer);
if (!renderer) console.warn("InterAct viewer: no WebGL in this browser; the 3D view is off, the faces still update");
renderer?.setPixelRatio(Math.min(window.devicePixelRatio, 2));

const scene = new THREE.Scene();
scene.background = new THREE.Color(0x14161b);
scene.fog = new THREE.Fog(0x14161b, 7, 14);
scene.add(new THREE.HemisphereLight(0xdde6ff, 0x3a3530, 1.6));
const sun = new THREE.DirectionalLight(0xffffff, 1.7);
sun.position.set(-2, 4, 3);
scene.add(sun);
scene.add(new THREE.GridHelper(8, 16, 0x3a404c, 0x262a33));
const camera = new THREE.PerspectiveCamera(35, 16 / 9, 0.05, 60);
const view = { target: new THREE.Vector3(0, 0.9, 0.7), normal: new THREE.Vector3(-1, 0, 0), sep: 1.4, azimuth: 0,
               zoom: 1 };

function placeCamera() {
  const vf = THREE.MathUtils.degToRad(camera.fov);
  const hf = 2 * Math.atan(Math.tan(vf / 2) * camera.aspect);
  const dist = view.zoom * Math.max((view.sep / 2 + 0.9) / Math.tan(hf / 2), 1.15 / Math.tan(vf / 2));
  const dir = view.normal.clone().applyAxisAngle(UP, view.azimuth);
  camera.position.copy(view.target).addScaledVector(dir, dist).addScaledVector(UP, 0.2 * dist);
  camera.lookAt(view.target);
  dirty = true;
}

let dirty = true; // something changed since the last render
new ResizeObserver(() => {
  const { clientWidth: w, clientHeight: h } = $("stage");
  if (!w || !h) return;
  renderer?.setSize(w, h, false);
  camera.aspect = w / h;
  camera.updateProjectionMatrix();
  placeCamera();
}).observe($("stage"));

let drag = null; // drag to orbit, wheel to zoom
$("stage").addEventListener("pointerdown", (e) => { drag = e.clientX; $("stage").setPointerCapture(e.pointerId); });
$("stage").addEventListener("pointerup", () => { drag = null; });
$("stage").addEventListener("pointermove", (e) => {
  if (drag === null) return;
  view.azimuth -= (e.clientX - drag) * 0.006;
  drag = e.clientX;
  placeCamera();
});
$("stage").addEventListener("wheel", (e) => {
  e.preventDefault();
  view.zoom = THREE.MathUtils.clamp(view.zoom * Math.exp(e.deltaY * 0.001), 0.4, 3);
  placeCamera();
}, { passive: false });

class Body {
  constructor(skeleton, rootJoint, p, faceCanvas) {
    const material = new THREE.MeshStandardMaterial({ color: COLORS[p], roughness: 0.6 });
    this.outer = new THREE.Group(); // the stage turn about the person's first position
    this.inner = new THREE.Group(); // world coordinates of the stream
    this.outer.add(this.inner);
    this.rootJoint = rootJoint;
    this.joints = skeleton.names.map((name, j) => {
      const o = new THREE.Object3D();
      o.name = name;
      o.position.fromArray(skeleton.offsets[j]);
      return o;
    });
    skeleton.parents.forEach((parent, j) => {
      (parent < 0 ? this.inner : this.joints[parent]).add(this.joints[j]);
      const offset = new THREE.Vector3().fromArray(skeleton.offsets[j]);
      const length = offset.length();
      if (parent < 0 || length < 1e-4) return;
      const radius = (RADII.find(([re]) => re.test(skeleton.names[j])) || [null, 0.04])[1];
      const bone = new THREE.Mesh(new THREE.CapsuleGeometry(radius, Math.max(length - radius, 1e-3), 3, 10), material);
      bone.position.copy(offset).multiplyScalar(0.5);
      bone.quaternion.setFromUnitVectors(UP, offset.normalize());
      this.joints[parent].add(bone);
    });
    const headIndex = skeleton.names.findIndex((n) => /(^|[^a-z])head$/i.test(n));
    this.head = this.joints[headIndex >= 0 ? headIndex : this.joints.length - 1];
    const skull = new THREE.Mesh(new THREE.SphereGeometry(0.105, 24, 16),
                                 new THREE.MeshStandardMaterial({ color: SKIN, roughness: 0.8 }));
    skull.position.set(0, 0.085, 0.015);
    this.head.add(skull);
    this.faceTexture = new THREE.CanvasTexture(faceCanvas); // the card's face, on the front of the head (+Z)
    this.faceTexture.colorSpace = THREE.SRGBColorSpace;
    const front = new THREE.SphereGeometry(0.1065, 24, 16, Math.PI / 2 - 1.2, 2.4, 0.55, 2.0);
    skull.add(new THREE.Mesh(front, new THREE.MeshStandardMaterial({ map: this.faceTexture, transparent: true,
                                                                     alphaTest: 0.5, roughness: 0.8 })));
    this.ring = new THREE.Mesh(new THREE.RingGeometry(0.32, 0.38, 40),
                               new THREE.MeshBasicMaterial({ color: COLORS[p], transparent: true, opacity: 0.25 }));
    this.ring.rotation.x = -Math.PI / 2;
    this.inner.add(this.ring);
    this.label = document.createElement("div");
    this.label.className = "label";
    this.label.style.border = `1px solid ${COLORS[p]}`;
    $("stage").append(this.label);
    scene.add(this.outer);
  }

  apply(person) {
    const q = person.joints;
    this.joints.forEach((o, j) => o.quaternion.set(q[4 * j + 1], q[4 * j + 2], q[4 * j + 3], q[4 * j]));
    this.joints[this.rootJoint].position.fromArray(person.root); // world position of the root joint (metres)
    this.ring.position.set(person.root[0], 0.005, person.root[2]);
    this.ring.material.opacity = person.speaking ? 0.9 : 0.25;
  }

  placeLabel(text) {
    const at = new THREE.Vector3(0, 0.32, 0);
    this.head.localToWorld(at);
    at.project(camera);
    const stage = $("stage");
    this.label.style.left = `${((at.x + 1) / 2) * stage.clientWidth}px`;
    this.label.style.top = `${((1 - at.y) / 2) * stage.clientHeight}px`;
    this.label.textContent = text;
  }

  dispose() {
    scene.remove(this.outer);
    this.outer.traverse((o) => { o.geometry?.dispose(); o.material?.dispose(); });
    this.faceTexture.dispose();
    this.label.remove();
  }
}

// Each person turned STAGE_TURN toward the camera about where they first stand; the camera looks across the line
// from A to B (A on the left), far enough back to see both whole.
function stage(frame) {
  const [a, b] = frame.people.map((p) => new THREE.Vector3(p.root[0], 0, p.root[2]));
  const u = b.clone().sub(a);
  view.sep = u.length();
  if (view.sep < 1e-3) u.set(1, 0, 0); else u.normalize();
  view.normal.set(-u.z, 0, u.x); // u x up
  view.target.copy(a).add(b).multiplyScalar(0.5).setY(0.85);
  bodies.forEach((body, p) => {
    const r = 4 * body.rootJoint, q = frame.people[p].joints;
    const facing = new THREE.Vector3(0, 0, 1).applyQuaternion(new THREE.Quaternion(q[r + 1], q[r + 2], q[r + 3], q[r]));
    const d = Math.atan2(view.normal.x, view.normal.z) - Math.atan2(facing.x, facing.z);
    const delta = Math.atan2(Math.sin(d), Math.cos(d));
    const origin = p === 0 ? a : b;
    body.outer.position.copy(origin);
    body.outer.quaternion.setFromAxisAngle(UP, Math.sign(delta) * Math.min(Math.abs(delta), STAGE_TURN));
    body.inner.position.copy(origin).negate();
  });
  placeCamera();
}

// ---------------------------------------------------------------------------------------------- the faces
// One face, 256 x 256, as seen from the front: the person's left eye is on the image's right.
function drawFace(ctx, w, accent) {
  const s = ctx.canvas.width / 256;
  ctx.setTransform(s, 0, 0, s, 0, 0);
  ctx.clearRect(0, 0, 256, 256);
  const jaw = w("jawOpen"), puff = w("cheekPuff");
  const cx = 128, cy = 122;
  ctx.beginPath(); // head: the lower half drops with the jaw and widens with a puffed cheek
  ctx.ellipse(cx, cy, 92, 104, 0, Math.PI, 2 * Math.PI);
  ctx.ellipse(cx, cy, 92 + 8 * puff, 108 + 16 * jaw, 0, 0, Math.PI);
  ctx.fillStyle = SKIN;
  ctx.fill();
  ctx.lineWidth = 4;
  ctx.strokeStyle = accent;
  ctx.stroke();
  ctx.beginPath(); // hair
  ctx.ellipse(cx, cy, 95, 108, 0, Math.PI + 0.2, 2 * Math.PI - 0.2);
  ctx.quadraticCurveTo(cx, cy - 70, cx - 95 * Math.cos(0.2), cy - 108 * Math.sin(0.2));
  ctx.fillStyle = accent;
  ctx.fill();
  for (const [side, sign] of [["Right", -1], ["Left", 1]]) {
    const ex = cx + sign * 38, ey = 112;
    const inner = w("browInnerUp") * 12 - w(`browDown${side}`) * 10;
    const outer = w(`browOuterUp${side}`) * 14 - w(`browDown${side}`) * 5;
    ctx.beginPath(); // brow, inner end (near the nose) to outer end
    ctx.moveTo(cx + sign * 14, ey - 28 - inner);
    ctx.quadraticCurveTo(ex, ey - 38 - (inner + outer) / 2, cx + sign * 62, ey - 24 - outer);
    ctx.lineWidth = 7;
    ctx.lineCap = "round";
    ctx.strokeStyle = "#5a4334";
    ctx.stroke();
    const open = THREE.MathUtils.clamp(1 - 1.05 * w(`eyeBlink${side}`) + 0.4 * w(`eyeWide${side}`)
                                       - 0.3 * w(`eyeSquint${side}`), 0, 1.4);
    if (open < 0.08) { // closed: the lid line
      ctx.beginPath();
      ctx.moveTo(ex - 17, ey);
      ctx.quadraticCurveTo(ex, ey + 6, ex + 17, ey);
      ctx.lineWidth = 3;
      ctx.strokeStyle = "#3b2a20";
      ctx.stroke();
      continue;
    }
    ctx.save();
    ctx.beginPath();
    ctx.ellipse(ex, ey, 17, 11 * open, 0, 0, 2 * Math.PI);
    ctx.fillStyle = "#fbfbf8";
    ctx.fill();
    ctx.clip();
    // gaze: "Out" is toward the person's own side; +x is the image's right, +y down
    const look = side === "Left" ? w("eyeLookOutLeft") - w("eyeLookInLeft") : w("eyeLookInRight") - w("eyeLookOutRight");
    const lx = 9 * look, ly = 7 * (w(`eyeLookDown${side}`) - w(`eyeLookUp${side}`));
    ctx.beginPath();
    ctx.arc(ex + lx, ey + ly, 7.5, 0, 2 * Math.PI);
    ctx.fillStyle = "#3d5a73";
    ctx.fill();
    ctx.beginPath();
    ctx.arc(ex + lx, ey + ly, 3.5, 0, 2 * Math.PI);
    ctx.fillStyle = "#111";
    ctx.fill();
    ctx.restore();
    ctx.beginPath();
    ctx.ellipse(ex, ey, 17, 11 * open, 0, Math.PI, 2 * Math.PI); // upper lid
    ctx.lineWidth = 2.5;
    ctx.strokeStyle = "#3b2a20";
    ctx.stroke();
  }
  ctx.beginPath(); // nose
  ctx.moveTo(cx - 2, 124);
  ctx.quadraticCurveTo(cx - 10 - 4 * (w("noseSneerLeft") + w("noseSneerRight")), 150, cx + 6, 152);
  ctx.lineWidth = 3;
  ctx.strokeStyle = "#c9a187";
  ctx.stroke();
  drawMouth(ctx, w, cx, jaw);
}

function drawMouth(ctx, w, cx, jaw) {
  const avg = (a, b) => (w(a) + w(b)) / 2;
  const mx = cx + 16 * (w("mouthLeft") - w("mouthRight")) + 8 * (w("jawLeft") - w("jawRight"));
  const my = 176 + 6 * jaw;
  const narrow = 1 - 0.45 * w("mouthPucker") - 0.3 * w("mouthFunnel") - 0.15 * avg("mouthPressLeft", "mouthPressRight");
  const corner = (side, sign) => ({ // the image's left corner is the person's right
    x: mx + sign * 34 * (narrow + 0.25 * w(`mouthSmile${side}`) + 0.3 * w(`mouthStretch${side}`)
                         + 0.1 * w(`mouthDimple${side}`)),
    y: my - 11 * w(`mouthSmile${side}`) + 9 * w(`mouthFrown${side}`),
  });
  const l = corner("Right", -1), r = corner("Left", 1), cy = (l.y + r.y) / 2;
  const opening = 48 * THREE.MathUtils.clamp(1.1 * jaw + 0.25 * avg("mouthLowerDownLeft", "mouthLowerDownRight")
                                             + 0.2 * avg("mouthUpperUpLeft", "mouthUpperUpRight")
                                             - w("mouthClose"), 0, 1) + 8 * w("mouthFunnel");
  const top = my - 0.25 * opening - 4 * avg("mouthUpperUpLeft", "mouthUpperUpRight") + 3 * w("mouthShrugUpper");
  const bottom = my + 0.75 * opening + 4 * avg("mouthLowerDownLeft", "mouthLowerDownRight") - 3 * w("mouthShrugLower");
  const lips = (yMid) => 2 * yMid - cy; // quadratic control point through yMid at the middle
  ctx.lineCap = "round";
  if (bottom - top > 2) {
    ctx.save();
    ctx.beginPath();
    ctx.moveTo(l.x, l.y);
    ctx.quadraticCurveTo(mx, lips(top), r.x, r.y);
    ctx.quadraticCurveTo(mx, lips(bottom), l.x, l.y);
    ctx.fillStyle = "#3b1518";
    ctx.fill();
    ctx.clip();
    ctx.fillStyle = "#f4f1ea"; // upper teeth
    ctx.fillRect(l.x, top - 2, r.x - l.x, Math.min(7, (bottom - top) * 0.35) + 2);
    if (w("tongueOut") > 0.05) {
      ctx.beginPath();
      ctx.ellipse(mx, bottom, 14, 10 * (1 + w("tongueOut")), 0, 0, 2 * Math.PI);
      ctx.fillStyle = "#d0606a";
      ctx.fill();
    }
    ctx.restore();
  }
  ctx.strokeStyle = "#b65a5a";
  ctx.lineWidth = Math.max(2, 6 - 4 * w("mouthRollUpper") + 3 * w("mouthPucker"));
  ctx.beginPath();
  ctx.moveTo(l.x, l.y);
  ctx.quadraticCurveTo(mx, lips(top) - 2, r.x, r.y);
  ctx.stroke();
  ctx.lineWidth = Math.max(2, 8 - 5 * w("mouthRollLower") + 3 * w("mouthPucker"));
  ctx.beginPath();
  ctx.moveTo(l.x, l.y);
  ctx.quadraticCurveTo(mx, lips(bottom) + 2, r.x, r.y);
  ctx.stroke();
}

// ------------------------------------------------------------------------------------------- the stream
let header = null, index = {}, bodies = [], buffer = [], playT = null, lastClock = null, staged = false;
let ended = false, lastIndex = null, shown = null;

function onHeader(h) {
  header = h;
  index = Object.fromEntries(h.blendshape_names.map((n, i) => [n, i]));
  bodies.forEach((b) => b.dispose());
  bodies = renderer ? [0, 1].map((p) => new Body(h.skeleton, h.root_joint, p, cards[p].canvas)) : [];
  h.speakers.forEach((name, p) => { cards[p].name.textContent = name; });
  buffer = []; playT = null; staged = false; ended = false; lastIndex = null; shown = null;
  viewer.sessions += 1;
  $("model").textContent = `${h.model} · block ${h.block} · lookahead ${h.lookahead} · K ${h.steps} · ` +
                           `session ${h.session_id}`;
  setStatus("live", "live");
  notice("waiting for frames…");
}

function onFrame(m) {
  if (!header) return;
  if (lastIndex !== null && m.i > lastIndex + 1) viewer.dropped += m.i - lastIndex - 1;
  lastIndex = m.i;
  viewer.framesReceived += 1;
  $("counter").textContent = `${viewer.framesReceived} frames`;
  buffer.push(m);
  if (buffer.length > 300) buffer.shift();
}

function onEnd(m) {
  ended = true;
  setStatus(`session ended · ${m.frames} frames`, "ended");
}

// The frame to show now: the playhead runs at wall-clock pace, LAG behind the newest, never past it.
function pick(now) {
  if (!buffer.length) return null;
  const newest = buffer[buffer.length - 1].t;
  const dt = lastClock === null ? 0 : (now - lastClock) / 1000;
  lastClock = now;
  playT = playT === null || newest - playT > MAX_BACKLOG ? Math.max(buffer[0].t, newest - LAG) : playT + dt;
  playT = Math.min(playT, newest);
  while (buffer.length > 1 && buffer[1].t <= playT) buffer.shift();
  return buffer[0];
}

function show(m) {
  if (!staged && bodies.length) { stage(m); staged = true; }
  notice("");
  m.people.forEach((person, p) => {
    const card = cards[p];
    const w = (name) => (name in index ? person.weights[index[name]] : 0);
    drawFace(card.ctx, w, COLORS[p]);
    card.el.classList.toggle("speaking", person.speaking);
    card.speech.textContent = person.speaking ? "speaking" : "listening";
    card.action.textContent = person.action;
    BARS.forEach(([, names], k) => {
      const v = names.reduce((s, n) => s + w(n), 0) / names.length;
      card.bars[k].fill.style.width = `${Math.round(100 * v)}%`;
      card.bars[k].value.textContent = v.toFixed(2);
    });
    if (bodies[p]) {
      bodies[p].apply(person);
      bodies[p].faceTexture.needsUpdate = true;
    }
  });
  viewer.framesShown += 1;
  viewer.time = m.t;
  $("clock").textContent = `t ${m.t.toFixed(2)} s · frame ${m.i}`;
  dirty = true;
}

function tick(now) {
  const m = pick(now);
  if (m && m !== shown) { shown = m; show(m); }
  if (dirty && renderer) {
    renderer.render(scene, camera);
    if (shown) bodies.forEach((b, p) => b.placeLabel(`${header.speakers[p]} · ${shown.people[p].action}`));
    dirty = false;
  }
  requestAnimationFrame(tick);
}

let attempt = 0;
function connect() {
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
  ws.onopen = () => { attempt = 0; setStatus("connected · waiting for the session", "connected"); };
  ws.onmessage = (ev) => {
    const m = JSON.parse(ev.data);
    if (m.type === "frame") onFrame(m);
    else if (m.type === "header") onHeader(m);
    else if (m.type === "end") onEnd(m);
  };
  ws.onclose = () => {
    const wait = RECONNECT_MS[Math.min(attempt++, RECONNECT_MS.length - 1)];
    if (!ended) setStatus(`disconnected · retrying in ${(wait / 1000).toFixed(1)} s`, "retry");
    setTimeout(connect, wait);
  };
}

notice(renderer ? "waiting for the stream…" : "");
connect();
requestAnimationFrame(tick);
