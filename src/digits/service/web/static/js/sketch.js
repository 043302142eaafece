// The drawing pad: strokes from mouse, pen or finger (pointer events), undo and clear.
// Dark ink on white, like a pen on paper; the server's MNIST-style preprocessing inverts,
// crops, fits and centres it, and the page shows the result.

const INK = "#111111";
const PAPER = "#ffffff";

export class Sketch {
  /** ``onStroke`` is called after every finished stroke, undo and clear. */
  constructor(canvas, onStroke) {
    this.canvas = canvas;
    this.context = canvas.getContext("2d");
    this.onStroke = onStroke;
    this.strokes = [];
    this.current = null;
    canvas.addEventListener("pointerdown", (event) => this.start(event));
    canvas.addEventListener("pointermove", (event) => this.extend(event));
    canvas.addEventListener("pointerup", (event) => this.end(event));
    canvas.addEventListener("pointercancel", (event) => this.end(event));
    this.redraw();
  }

  get empty() {
    return this.strokes.length === 0;
  }

  /** The pointer's position in canvas pixels (the canvas is scaled by CSS). */
  point(event) {
    const box = this.canvas.getBoundingClientRect();
    return [(event.clientX - box.left) * (this.canvas.width / box.width),
      (event.clientY - box.top) * (this.canvas.height / box.height)];
  }

  start(event) {
    event.preventDefault();
    this.canvas.setPointerCapture?.(event.pointerId);
    this.current = [this.point(event)];
    this.strokes.push(this.current);
    this.redraw();
  }

  extend(event) {
    if (!this.current) return;
    event.preventDefault();
    this.current.push(this.point(event));
    this.redraw();
  }

  end(event) {
    if (!this.current) return;
    this.current = null;
    this.canvas.releasePointerCapture?.(event.pointerId);
    this.onStroke();
  }

  undo() {
    this.strokes.pop();
    this.redraw();
    this.onStroke();
  }

  clear() {
    this.strokes = [];
    this.redraw();
    this.onStroke();
  }

  redraw() {
    const { context, canvas } = this;
    context.fillStyle = PAPER;
    context.fillRect(0, 0, canvas.width, canvas.height);
    context.strokeStyle = INK;
    context.fillStyle = INK;
    context.lineWidth = canvas.width / 14;
    context.lineCap = "round";
    context.lineJoin = "round";
    for (const stroke of this.strokes) {
      context.beginPath();
      context.moveTo(...stroke[0]);
      if (stroke.length === 1) {
        context.arc(stroke[0][0], stroke[0][1], context.lineWidth / 2, 0, 2 * Math.PI);
        context.fill();
        continue;
      }
      for (const point of stroke.slice(1)) context.lineTo(...point);
      context.stroke();
    }
  }

  /** The drawing as PNG file bytes. */
  async png() {
    const blob = await new Promise((resolve) => this.canvas.toBlob(resolve, "image/png"));
    return new Uint8Array(await blob.arrayBuffer());
  }
}
