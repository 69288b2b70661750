// Cloud Outpaint: the cost badge on VolcOutpaint and DashScopeOutpaint ("≈ ¥0.18 × batch").
//
// The badge is a node title badge (node.badges), the frontend's own place for prices: LiteGraph
// draws it above the title bar (frontend 1.27 and 1.42's canvas), the 1.42 Vue nodes render the same
// list in their header. The key badge lives inside the node body (geometry_preview.js), so the two
// never overlap. The estimate is price per image × images per input (VolcOutpaint's `variants`,
// DashScope 1) × batch; the batch is unknown until a run reports it. Prices come from
// GET /cloud_outpaint/spend (spend_panel.js); a run's `cloud_outpaint_cost` UI entry tells how many
// results came from the cache.

import { currentPrices, formatCny, lastSpendStatus, onSpend, refreshSpend } from "./spend_panel.js";

const { app } = window.comfyAPI.app;

const COST_NODES = { VolcOutpaint: "volc", DashScopeOutpaint: "dashscope" };
const VENDOR_NAMES = { volc: "Volcengine", dashscope: "DashScope" };
const TONES = {
    paid: { fgColor: "#fff", bgColor: "#6b4a12" },
    free: { fgColor: "#fff", bgColor: "#2f5d34" },
    unknown: { fgColor: "#fff", bgColor: "#7a2e2e" },
};

function widgetValue(node, name) {
    return node.widgets?.find((w) => w.name === name)?.value;
}

/** Results bought per input image: VolcOutpaint's variants (each a billed request), DashScope 1. */
function imagesPerInput(node, vendor) {
    return vendor === "volc" ? Math.max(1, Math.round(Number(widgetValue(node, "variants")) || 1)) : 1;
}

/** The estimate for the node's current widgets: { text, tone }. */
export function costEstimate(node, prices = currentPrices()) {
    const vendor = COST_NODES[node.comfyClass ?? node.type];
    if (widgetValue(node, "backend") === "sandbox") return { text: "free (sandbox)", tone: "free" };
    if (vendor === "dashscope" && String(widgetValue(node, "resume_task_ids") ?? "").trim()) {
        return { text: "resumes paid tasks (no new task)", tone: "free" };
    }
    const price = prices?.[vendor];
    if (price == null) {
        // with a daily limit the server refuses a run it cannot price (issue 13, item 4)
        const refused = lastSpendStatus()?.limit_cny != null ? " (refused under the daily limit)" : "";
        return { text: `${VENDOR_NAMES[vendor]} price not set${refused}`, tone: "unknown" };
    }
    const perInput = imagesPerInput(node, vendor);
    const batch = node.cloudOutpaintBatch;
    if (!batch) return { text: `≈ ${formatCny(price * perInput)} × batch`, tone: "paid" };
    const images = batch * perInput;
    return { text: `≈ ${formatCny(price * images)} (${images} image${images === 1 ? "" : "s"})`, tone: "paid" };
}

/** " · last run: from cache" after a run the cache served (all or part of it). */
function lastRunMark(node) {
    const run = node.cloudOutpaintLastCost;
    const cached = Number(run?.cached) || 0, paid = Number(run?.paid) || 0;
    if (!cached) return "";
    return paid ? ` · last run: ${cached}/${cached + paid} from cache` : " · last run: from cache";
}

export function costBadgeText(node) {
    return costEstimate(node).text + lastRunMark(node);
}

const LGraphBadge = window.comfyAPI?.litegraph?.LGraphBadge ?? globalThis.LGraphBadge;

function makeBadge(text, tone) {
    return new LGraphBadge({ text, ...TONES[tone] });
}

// 1.42's Vue nodes re-render the badge only when something reactive it read has changed: the widget
// values are (a widget's value lives in its reactive `_state` there), the node's own fields are not.
// So a run or a new price bumps a counter in the `backend` widget's state, which the badge reads.
// (On the canvas, 1.27 and 1.42, LiteGraph simply asks again at the next frame.)
const RUN_SEQ = "cloudOutpaintRunSeq";

function reactiveState(node) {
    const widget = node.widgets?.find((w) => w.name === "backend");
    return widget?._state ?? widget;
}

function redrawBadge(node) {
    const state = reactiveState(node);
    if (state) state[RUN_SEQ] = (state[RUN_SEQ] ?? 0) + 1;
    node.setDirtyCanvas?.(true, true);
}

/**
 * The node a badge should describe. 1.42's Vue list is keyed by node id, and a Vue node that outlives
 * its node (a workflow loaded over one with the same ids) keeps asking the old node's badges; so
 * a badge whose node has left the graph describes the node now holding that id, or nothing.
 */
function liveNode(node) {
    const current = (node.graph ?? app.graph)?.getNodeById?.(node.id);
    if (!current || current === node) return node;
    return COST_NODES[current.comfyClass] ? current : null;
}

// The last node that held each id: when another takes the id, a Vue node still bound to the old one
// is told to ask again (it then finds the new node through liveNode).
const idHolders = new Map();

function noteIdHolder(node) {
    const previous = idHolders.get(node.id);
    idHolders.set(node.id, node);
    if (previous && previous !== node) redrawBadge(previous);
}

/** Add the badge: a function, so LiteGraph (and Vue) ask for the current text at every draw. */
function attachCostBadge(node) {
    const onAdded = node.onAdded;
    node.onAdded = function () {
        const result = onAdded?.apply(this, arguments);
        noteIdHolder(this);
        return result;
    };
    let cached = null;
    const badge = () => {
        const live = liveNode(node);
        if (!live) return makeBadge("", "free"); // an invisible badge (no text)
        void reactiveState(live)?.[RUN_SEQ]; // read, so Vue tracks it
        const { tone } = costEstimate(live);
        const text = costBadgeText(live);
        if (cached?.text !== text || cached?.tone !== tone) cached = { text, tone, badge: makeBadge(text, tone) };
        return cached.badge;
    };
    badge.cloudOutpaintCost = true;
    if (!node.badges.some((b) => b.cloudOutpaintCost)) node.badges.push(badge); // the same array Vue holds
    node.cloudOutpaintCostText = () => costBadgeText(node); // for tests and other extensions
}

/** After a run: the batch size and how many results came from the cache. */
function patchExecuted(nodeType) {
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (output) {
        const result = onExecuted?.apply(this, arguments);
        const cost = output?.cloud_outpaint_cost?.[0];
        const input = output?.cloud_outpaint_input?.[0];
        if (cost) this.cloudOutpaintLastCost = cost;
        if (input?.batch) this.cloudOutpaintBatch = input.batch; // the batch the node was given
        redrawBadge(this);
        return result;
    };
}

app.registerExtension({
    name: "cloud_outpaint.cost",
    async setup() {
        onSpend(() => {
            for (const node of app.graph?._nodes ?? []) if (COST_NODES[node.comfyClass]) redrawBadge(node);
        });
        try {
            await refreshSpend();
        } catch (err) {
            console.warn("Cloud Outpaint: could not read the prices", err);
        }
    },
    async beforeRegisterNodeDef(nodeType, nodeData) {
        if (!(nodeData.name in COST_NODES)) return;
        patchExecuted(nodeType);
    },
    nodeCreated(node) {
        // here, not in onNodeCreated: the frontend's own badges are pushed first (1.42's Vue header
        // treats the first badge as the frontend's)
        if (COST_NODES[node.comfyClass] && LGraphBadge && Array.isArray(node.badges)) attachCostBadge(node);
    },
});
