// Cloud Outpaint: frontend extension for the pack's three nodes.
//
// - a credentials dialog (credentials_dialog.js), reachable from Settings ▸ Cloud Outpaint, from the
//   right-click menu of the cloud nodes and from the key badge on those nodes;
// - a key status badge on VolcOutpaint / DashScopeOutpaint;
// - a geometry preview inside all three nodes (geometry_preview.js);
// - only the widgets of the chosen mode shown (mode_widgets.js).
// The status text during a run ("Volcengine: 1/4 done, …") is rendered by the ComfyUI frontend
// itself (progress_text → text preview widget), so nothing is needed here for it.

import { describeStatus, lastCredentialStatus, onCredentialStatus, openCredentialsDialog, refreshCredentialStatus } from "./credentials_dialog.js";
import { addPreviewWidget, refreshGeometry } from "./geometry_preview.js";
import "./cost_badge.js"; // the cost badge and the dialog's spend section: their own extension
import { patchModeWidgets } from "./mode_widgets.js";

const { app } = window.comfyAPI.app;

const CLOUD_NODES = { VolcOutpaint: "volc", DashScopeOutpaint: "dashscope" };
const PREVIEW_NODES = new Set(["MaskCanvasBuilder", ...Object.keys(CLOUD_NODES)]);
const MENU_LABEL = "Cloud Outpaint keys…";

/** Settings entry: a button that opens the dialog (frontend ≥1.16 renders a `type` function). */
function keysButton() {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = "Open keys dialog 打开密钥设置";
    button.className = "p-button p-component p-button-sm";
    button.dataset.cloudOutpaint = "open-keys";
    button.addEventListener("click", () => openCredentialsDialog());
    return button;
}

function patchCloudNode(nodeType, vendor) {
    const proto = nodeType.prototype;
    proto.cloudOutpaintOpenKeys = () => openCredentialsDialog();
    proto.cloudOutpaintBadgeText = function () {
        const status = this.cloudOutpaintKey;
        if (!status) return "… checking key";
        return status.configured ? describeStatus(status)
            : "✗ no key — right-click ▸ Cloud Outpaint keys";
    };
    const getExtraMenuOptions = proto.getExtraMenuOptions;
    proto.getExtraMenuOptions = function (canvas, options) {
        const result = getExtraMenuOptions?.apply(this, arguments);
        options.push(null, { content: MENU_LABEL, callback: () => openCredentialsDialog() });
        return result;
    };
    proto.cloudOutpaintVendor = vendor;
}

function patchPreviewNode(nodeType, nodeName) {
    const proto = nodeType.prototype;
    const onNodeCreated = proto.onNodeCreated;
    proto.onNodeCreated = function () {
        const result = onNodeCreated?.apply(this, arguments);
        addPreviewWidget(this, { badge: nodeName in CLOUD_NODES });
        // grow the node a little so the preview fits below the widgets
        const size = this.computeSize();
        this.setSize([Math.max(this.size[0], size[0]), Math.max(this.size[1], size[1])]);
        return result;
    };
    const onExecuted = proto.onExecuted;
    proto.onExecuted = function (output) {
        const result = onExecuted?.apply(this, arguments);
        const input = output?.cloud_outpaint_input?.[0];
        if (input?.width && input?.height) {
            // real input size from the last run (a UI payload of the node's execute)
            this.cloudOutpaintInput = { width: input.width, height: input.height };
            refreshGeometry(this, true);
        }
        return result;
    };
    const onConnectionsChange = proto.onConnectionsChange;
    proto.onConnectionsChange = function () {
        const result = onConnectionsChange?.apply(this, arguments);
        refreshGeometry(this); // VolcOutpaint's canvas mode depends on the mask link
        return result;
    };
}

/** Push the latest credential status into every cloud node on the graph. */
function applyStatus(status) {
    for (const node of app.graph?._nodes ?? []) {
        const vendor = CLOUD_NODES[node.comfyClass];
        if (vendor) node.cloudOutpaintKey = status[vendor];
    }
    app.graph?.setDirtyCanvas(true, true);
}

app.registerExtension({
    name: "cloud_outpaint.ui",
    settings: [{
        id: "CloudOutpaint.Keys",
        category: ["Cloud Outpaint", "Credentials", "Keys"],
        name: "API keys (Volcengine, DashScope) 云端密钥",
        tooltip: "Keys are kept on the ComfyUI server, never in workflows. 密钥仅保存在服务器。",
        type: () => keysButton(),
        defaultValue: "",
    }],
    async setup() {
        onCredentialStatus(applyStatus);
        try {
            await refreshCredentialStatus();
        } catch (err) {
            console.warn("Cloud Outpaint: could not read the key status", err);
        }
    },
    async beforeRegisterNodeDef(nodeType, nodeData) {
        if (!PREVIEW_NODES.has(nodeData.name)) return;
        patchPreviewNode(nodeType, nodeData.name);
        patchModeWidgets(nodeType, nodeData.name);
        if (nodeData.name in CLOUD_NODES) patchCloudNode(nodeType, CLOUD_NODES[nodeData.name]);
    },
    nodeCreated(node) {
        const vendor = CLOUD_NODES[node.comfyClass];
        if (!vendor) return;
        const status = lastCredentialStatus();
        if (status) node.cloudOutpaintKey = status[vendor];
        else refreshCredentialStatus().catch(() => {}); // before setup() has answered
    },
});
