// Cloud Outpaint: the geometry preview drawn inside the nodes.
//
// The geometry rules live only in Python (GET /cloud_outpaint/geometry); this file only collects the
// node's widget values, asks the route (debounced), and draws the answer: the canvas rectangle
// with the original inside it and "W×H → W'×H'". Before a run the input size is unknown, so a
// nominal 1024×1024 is used; after a run the node's executed message carries the real size.

const { api } = window.comfyAPI.api;

export const NOMINAL = 1024;
export const PREVIEW_HEIGHT = 118;
const DEBOUNCE_MS = 150;
// Long free text is not geometry and would only bloat the query string.
const SKIPPED_WIDGETS = new Set(["prompt", "watermark_text", "resume_task_ids", "fill_color"]);
const COLORS = {
    canvas: "#35506b", canvasEdge: "#7fb0e0", original: "#6b8f4e", originalEdge: "#b5e08a",
    text: "#ccc", error: "#ff6b6b", badgeOk: "#7c7", badgeMissing: "#e77",
};

/** Query parameters for the geometry route from the node's current widget values. */
export function geometryParams(node) {
    const size = node.cloudOutpaintInput;
    const params = new URLSearchParams({
        node: node.comfyClass || node.type,
        width: String(size?.width ?? NOMINAL),
        height: String(size?.height ?? NOMINAL),
    });
    for (const widget of node.widgets ?? []) {
        if (!widget.name || SKIPPED_WIDGETS.has(widget.name) || widget.name === PREVIEW_WIDGET) continue;
        const value = widget.value;
        if (typeof value === "number" || typeof value === "boolean" ||
            (typeof value === "string" && value.length <= 64)) params.set(widget.name, String(value));
    }
    // VolcOutpaint switches to canvas mode when its mask input is connected
    const mask = node.inputs?.find((input) => input.name === "mask");
    if (node.comfyClass === "VolcOutpaint" && mask?.link != null) params.set("canvas_mode", "1");
    return params.toString();
}

async function fetchGeometry(node, query) {
    const seq = (node._coGeometrySeq = (node._coGeometrySeq ?? 0) + 1);
    let geometry;
    try {
        const response = await api.fetchApi(`/cloud_outpaint/geometry?${query}`, { cache: "no-store" });
        geometry = await response.json();
        if (!response.ok && !geometry?.error) geometry = { error: `HTTP ${response.status}` };
    } catch (err) {
        geometry = { error: `preview unavailable: ${err.message}` };
    }
    if (seq !== node._coGeometrySeq) return; // a newer request is on its way
    // exposed for tests and other extensions: the last answer of the Python geometry route
    node.cloudOutpaintGeometry = { ...geometry, query };
    node.setDirtyCanvas?.(true, true);
}

/** Re-fetch the geometry if the widget values changed since the last request (debounced). */
export function refreshGeometry(node, force = false) {
    const query = geometryParams(node);
    if (!force && query === node._coGeometryQuery) return;
    node._coGeometryQuery = query;
    clearTimeout(node._coGeometryTimer);
    node._coGeometryTimer = setTimeout(() => fetchGeometry(node, query), DEBOUNCE_MS);
}

function sizeLabel(node, g) {
    const input = node.cloudOutpaintInput;
    const w = input?.width ?? NOMINAL, h = input?.height ?? NOMINAL;
    const out = `${g.output_width ?? g.canvas_width}×${g.output_height ?? g.canvas_height}`;
    return `${w}×${h} → ${out}` + (input ? "" : ` (nominal ${NOMINAL}×${NOMINAL} input)`);
}

function drawRects(ctx, g, left, top, width, height) {
    const scale = Math.min(width / g.canvas_width, height / g.canvas_height);
    const cw = g.canvas_width * scale, ch = g.canvas_height * scale;
    const x0 = left + (width - cw) / 2, y0 = top + (height - ch) / 2;
    ctx.fillStyle = COLORS.canvas;
    ctx.strokeStyle = COLORS.canvasEdge;
    ctx.fillRect(x0, y0, cw, ch);
    ctx.strokeRect(x0, y0, cw, ch);
    ctx.fillStyle = COLORS.original;
    ctx.strokeStyle = COLORS.originalEdge;
    const ox = x0 + g.x * scale, oy = y0 + g.y * scale;
    ctx.fillRect(ox, oy, g.width * scale, g.height * scale);
    ctx.strokeRect(ox, oy, g.width * scale, g.height * scale);
}

function drawBadge(node, ctx, left, y) {
    const status = node.cloudOutpaintKey;
    const text = node.cloudOutpaintBadgeText?.() ?? "";
    ctx.fillStyle = status?.configured ? COLORS.badgeOk : COLORS.badgeMissing;
    ctx.fillText(text, left, y);
}

export const PREVIEW_WIDGET = "cloud_outpaint_preview";

/**
 * A canvas-only widget at the end of the node. A widget (rather than drawing in onDrawForeground)
 * makes LiteGraph reserve the space, so the node grows and nothing overlaps the preview.
 */
export function addPreviewWidget(node, { badge = false } = {}) {
    const widget = {
        name: PREVIEW_WIDGET,
        type: "cloud_outpaint_preview",
        value: "",
        serialize: false, // not in widgets_values (so not in saved workflows or PNGs)
        options: { serialize: false }, // not in the prompt either
        computeSize: (width) => [width, PREVIEW_HEIGHT],
        computeLayoutSize: () => ({ minHeight: PREVIEW_HEIGHT, maxHeight: PREVIEW_HEIGHT, minWidth: 0 }),
        draw(ctx, node, widgetWidth, y) {
            refreshGeometry(node); // cheap when nothing changed; catches every way a value can change
            const margin = 10;
            let top = y + 4;
            ctx.save();
            ctx.font = "12px sans-serif";
            ctx.textBaseline = "top";
            if (badge) {
                drawBadge(node, ctx, margin, top);
                top += 16;
            }
            const g = node.cloudOutpaintGeometry;
            const textY = y + PREVIEW_HEIGHT - 16;
            if (g?.error) {
                ctx.fillStyle = COLORS.error;
                wrapText(ctx, g.error, margin, top, widgetWidth - 2 * margin, textY + 14 - top);
            } else if (g?.canvas_width) {
                drawRects(ctx, g, margin, top, widgetWidth - 2 * margin, textY - top - 4);
                ctx.fillStyle = COLORS.text;
                ctx.fillText(sizeLabel(node, g), margin, textY);
            } else {
                ctx.fillStyle = COLORS.text;
                ctx.fillText("geometry preview…", margin, top);
            }
            ctx.restore();
        },
        mouse(event, pos, node) {
            // a click on the badge line opens the keys dialog
            if (badge && event.type === "pointerdown" && pos[1] - (widget.last_y ?? widget.y ?? 0) < 20) {
                node.cloudOutpaintOpenKeys?.();
                return true;
            }
            return false;
        },
    };
    node.addCustomWidget(widget);
    return widget;
}

function wrapText(ctx, text, x, y, maxWidth, maxHeight) {
    let line = "";
    for (const word of String(text).split(/\s+/)) {
        const next = line ? `${line} ${word}` : word;
        if (ctx.measureText(next).width > maxWidth && line) {
            ctx.fillText(line, x, y);
            y += 14;
            line = word;
            if (maxHeight < 28) break;
            maxHeight -= 14;
        } else line = next;
    }
    if (line) ctx.fillText(line, x, y);
}
