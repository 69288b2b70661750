// Cloud Outpaint: show only the widgets that apply to a node's chosen mode (expand_mode / mode).
//
// Which widget applies under which mode comes from the pack (GET /cloud_outpaint/widget_modes, built
// from nodes/core/widgets.py), so this file names no widget. A hidden widget stays on the node: its
// value is saved in the workflow (widgets_values keep their positions) and sent in the prompt.
//
// Hiding, per frontend: `widget.hidden` is honoured by LiteGraph's drawing, hit testing and
// computeSize (1.27 and 1.42); 1.27 still lays hidden widgets out, so computeSize -> [0, -4] (as
// ComfyUI's own group nodes do) takes their rows away; the Vue node renderer (1.42, "Nodes 2.0")
// reads `options.hidden` from the widget store's reactive state, so that is set too (the same
// pair ComfyUI's PreviewAny sets).

const { api } = window.comfyAPI.api;

let modesPromise = null;

/** {node id: {mode_widget, modes: {widget: [modes]}, linked_hides: {input: [widgets]}}}, fetched once. */
export function loadWidgetModes() {
    modesPromise ??= api.fetchApi("/cloud_outpaint/widget_modes", { cache: "no-store" })
        .then((r) => (r.ok ? r.json() : {}))
        .catch((err) => {
            console.warn("Cloud Outpaint: could not read the widget modes", err);
            return {};
        });
    return modesPromise;
}

function hideZero() {
    return [0, -4];
}

function setHidden(widget, hidden) {
    if (!!widget.hidden === hidden) return false;
    widget.hidden = hidden;
    if (hidden) {
        widget.cloudOutpaintComputeSize = widget.computeSize;
        widget.computeSize = hideZero;
    } else if (widget.computeSize === hideZero) {
        widget.computeSize = widget.cloudOutpaintComputeSize;
        if (!widget.computeSize) delete widget.computeSize;
    }
    // the Vue renderer watches the store's reactive copy of the options (same object when not reactive)
    for (const options of new Set([widget._state?.options, widget.options])) {
        if (options) options.hidden = hidden;
    }
    return true;
}

function linkedInputs(node) {
    return new Set((node.inputs ?? []).filter((i) => i.link != null && !i.widget).map((i) => i.name));
}

/** Hide the widgets of `node` that do not apply to its current mode; resize the node if any changed. */
export function applyModes(node, entry) {
    if (!entry || !node.widgets) return;
    const mode = node.widgets.find((w) => w.name === entry.mode_widget)?.value;
    const hiddenByLink = new Set();
    const linked = linkedInputs(node);
    for (const [input, names] of Object.entries(entry.linked_hides ?? {})) {
        if (linked.has(input)) names.forEach((n) => hiddenByLink.add(n));
    }
    const managed = new Set([...Object.keys(entry.modes), ...Object.values(entry.linked_hides ?? {}).flat()]);
    let changed = false;
    for (const widget of node.widgets) {
        if (!managed.has(widget.name)) continue; // other widgets (ComfyUI's own included) are left as they are
        const modes = entry.modes[widget.name];
        const applies = !hiddenByLink.has(widget.name) && (!modes || modes.includes(mode));
        changed = setHidden(widget, !applies) || changed;
    }
    if (!changed) return;
    const size = node.computeSize();
    node.setSize([node.size[0], size[1]]);
    node.setDirtyCanvas?.(true, true);
}

/** Patch a node type: apply on creation, on workflow load, on a mode change and on (dis)connection. */
export function patchModeWidgets(nodeType, nodeName) {
    const proto = nodeType.prototype;
    const apply = (node) => loadWidgetModes().then((all) => applyModes(node, all[nodeName]));
    const onNodeCreated = proto.onNodeCreated;
    proto.onNodeCreated = function () {
        const result = onNodeCreated?.apply(this, arguments);
        loadWidgetModes().then((all) => {
            const entry = all[nodeName];
            const widget = entry && this.widgets?.find((w) => w.name === entry.mode_widget);
            if (widget && !widget.cloudOutpaintModes) {
                widget.cloudOutpaintModes = true;
                const callback = widget.callback;
                const node = this;
                widget.callback = function () {
                    const r = callback?.apply(this, arguments);
                    applyModes(node, entry);
                    return r;
                };
            }
            applyModes(this, entry);
        });
        return result;
    };
    const onConfigure = proto.onConfigure;
    proto.onConfigure = function () {
        const result = onConfigure?.apply(this, arguments);
        apply(this); // widgets_values are in place by now
        return result;
    };
    const onConnectionsChange = proto.onConnectionsChange;
    proto.onConnectionsChange = function () {
        const result = onConnectionsChange?.apply(this, arguments);
        apply(this);
        return result;
    };
}
