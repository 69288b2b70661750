// Cloud Outpaint: the credentials dialog (plain DOM, no framework).
//
// Secrets only travel one way: from a password input straight into one POST to the pack's own
// route, after which the inputs are emptied. Nothing here keeps a secret in a variable that
// outlives the click handler, and nothing is written to localStorage, sessionStorage, widget
// values or node properties. The server answers with a status that never contains a secret.

const { api } = window.comfyAPI.api;

export const DASHSCOPE_BEIJING = "https://dashscope.aliyuncs.com/api/v1";
const DIALOG_ID = "cloud-outpaint-credentials";
const VENDORS = { volc: "Volcengine 火山引擎", dashscope: "DashScope 阿里云百炼" };

/** The latest answer of a route, kept for whoever asks and told to every listener (the node badges)
 *  now and after every load or save. */
export function latestAnswer() {
    const listeners = new Set();
    let last = null;
    return {
        get: () => last,
        subscribe(listener) {
            listeners.add(listener);
            if (last) listener(last);
        },
        publish(answer) {
            last = answer;
            for (const listener of listeners) listener(answer);
        },
    };
}

const credentialStatus = latestAnswer();
export const lastCredentialStatus = credentialStatus.get;
export const onCredentialStatus = credentialStatus.subscribe;
// Builders of further dialog sections (spend_panel.js), each called with the DOM helpers below.
export const dialogSections = [];

// The server refuses every POST without this header (nodes/route_guard.py): a page on another
// site cannot send it without a CORS preflight, which ComfyUI does not grant.
const PACK_HEADER = { "X-Cloud-Outpaint": "1" };

export async function callRoute(path, body) {
    const init = body === undefined ? { method: "GET", headers: { ...PACK_HEADER } } : {
        method: "POST", headers: { ...PACK_HEADER, "Content-Type": "application/json" }, body: JSON.stringify(body),
    };
    const response = await api.fetchApi(`/cloud_outpaint/${path}`, { ...init, cache: "no-store" });
    let data = null;
    try {
        data = await response.json();
    } catch {
        data = { error: `HTTP ${response.status}` };
    }
    if (!response.ok) throw new Error(data?.error || data?.message || `HTTP ${response.status}`);
    return data;
}

/** GET the credential status (never contains a secret) and tell the badges. */
export async function refreshCredentialStatus() {
    const status = await callRoute("credentials");
    credentialStatus.publish(status);
    return status;
}

/** One line such as "✓ key: env …ab12" or "✗ no key". */
export function describeStatus(s) {
    if (!s) return "? status unknown";
    if (!s.configured) return `✗ no key 未配置${s.problem ? ` — ${s.problem}` : ""}`;
    const parts = [`✓ key: ${s.source || "?"}`];
    if (s.hint) parts.push(s.hint);
    if (s.kind === "bearer") parts.push("(gateway)");
    return parts.join(" ");
}

// ---- small DOM helpers -------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
        if (key === "style") Object.assign(node.style, value);
        else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
        else node.setAttribute(key, value);
    }
    for (const child of children) node.append(child);
    return node;
}

const INPUT_STYLE = {
    width: "100%", boxSizing: "border-box", padding: "5px 7px", borderRadius: "4px",
    border: "1px solid var(--border-color, #444)", background: "var(--comfy-input-bg, #222)",
    color: "var(--input-text, #ddd)", font: "inherit",
};
const BUTTON_STYLE = {
    padding: "5px 12px", borderRadius: "4px", border: "1px solid var(--border-color, #555)",
    background: "var(--comfy-menu-secondary-bg, #333)", color: "var(--fg-color, #eee)", cursor: "pointer",
};

/** A labelled input. Secrets are password inputs the browser must not remember. */
function field(name, label, { secret = false, placeholder = "" } = {}) {
    const input = el("input", {
        name, type: secret ? "password" : "text", autocomplete: "off",
        spellcheck: "false", placeholder, "data-secret": secret ? "1" : "0", style: INPUT_STYLE,
    });
    return el("label", { style: { display: "block", margin: "6px 0" } },
        el("div", { style: { fontSize: "12px", opacity: "0.8", marginBottom: "2px" } }, label), input);
}

function button(text, onclick, name) {
    return el("button", { type: "button", name: name || "", style: BUTTON_STYLE, onclick }, text);
}

// ---- the vendor sections -----------------------------------------------------------------

function volcSection() {
    return [
        field("access_key", "Access Key ID (AK)", { secret: true, placeholder: "leave empty = unchanged" }),
        field("secret_key", "Secret Access Key (SK)", { secret: true, placeholder: "leave empty = unchanged" }),
        field("session_token", "STS session token (optional 临时凭证)", { secret: true }),
        el("div", { style: { fontSize: "12px", opacity: "0.7", margin: "8px 0 0" } },
            "— or a gateway 或使用网关 —"),
        field("base_url", "Gateway / base URL (optional)", { placeholder: "https://visual.volcengineapi.com" }),
        field("api_key", "Gateway API key (Bearer)", { secret: true }),
    ];
}

function dashscopeSection() {
    const region = el("select", { name: "region", style: INPUT_STYLE },
        el("option", { value: DASHSCOPE_BEIJING }, `Beijing 北京 (default) — ${DASHSCOPE_BEIJING}`),
        el("option", { value: "custom" }, "Custom URL 自定义"));
    const custom = field("base_url", "Custom base URL", { placeholder: "https://…/api/v1" });
    custom.style.display = "none";
    region.addEventListener("change", () => {
        custom.style.display = region.value === "custom" ? "block" : "none";
    });
    return [
        field("api_key", "API key (sk-…)", { secret: true, placeholder: "leave empty = unchanged" }),
        el("label", { style: { display: "block", margin: "6px 0" } },
            el("div", { style: { fontSize: "12px", opacity: "0.8", marginBottom: "2px" } }, "Region / base URL 地域"),
            region),
        custom,
        field("workspace", "Workspace ID (optional 业务空间)"),
    ];
}

/** The fields of one vendor to POST: non-empty values only (empty = leave unchanged). */
function collectFields(section, vendor) {
    const body = { vendor };
    for (const input of section.querySelectorAll("input[name]")) {
        if (input.value.trim()) body[input.name] = input.value.trim();
    }
    if (vendor === "dashscope") {
        const region = section.querySelector("select[name=region]").value;
        if (region !== "custom") body.base_url = region;
    }
    return body;
}

function clearSecretInputs(section) {
    for (const input of section.querySelectorAll("input")) input.value = "";
}

function showStatus(section, status) {
    const line = section.querySelector("[data-role=status]");
    line.textContent = describeStatus(status);
    line.style.color = status?.configured ? "#7c7" : "#e77";
    const details = [];
    if (status?.base_url) details.push(`URL: ${status.base_url}`);
    if (status?.workspace) details.push(`workspace: ${status.workspace}`);
    if (status?.source === "env") details.push("environment variables win over saved keys 环境变量优先");
    section.querySelector("[data-role=details]").textContent = details.join(" · ");
    const region = section.querySelector("select[name=region]");
    if (region && status?.base_url && status.source !== "env") {
        const isDefault = status.base_url === DASHSCOPE_BEIJING;
        region.value = isDefault ? DASHSCOPE_BEIJING : "custom";
        region.dispatchEvent(new Event("change"));
    }
}

function showResult(section, ok, text) {
    const line = section.querySelector("[data-role=result]");
    line.textContent = text;
    line.style.color = ok ? "#7c7" : "#e77";
}

async function runTest(section, vendor, backend) {
    showResult(section, true, `Testing ${backend}… 测试中`);
    try {
        const r = await callRoute("test", { vendor, backend });
        const extra = [r.code, r.request_id && `request ${r.request_id}`].filter(Boolean).join(", ");
        showResult(section, !!r.ok, `${r.ok ? "✓ OK" : "✗ Failed"} (${backend}): ${r.message || ""}` +
            (extra ? ` [${extra}]` : ""));
    } catch (err) {
        showResult(section, false, `✗ ${err.message}`);
    }
}

function vendorSection(vendor, rerender) {
    const inputs = vendor === "volc" ? volcSection() : dashscopeSection();
    const section = el("fieldset", {
        "data-vendor": vendor,
        style: { border: "1px solid var(--border-color, #444)", borderRadius: "6px", padding: "8px 12px", margin: "0 0 10px" },
    },
    el("legend", { style: { padding: "0 6px", fontWeight: "bold" } }, VENDORS[vendor]),
    el("div", { "data-role": "status", style: { fontWeight: "bold" } }, "…"),
    el("div", { "data-role": "details", style: { fontSize: "12px", opacity: "0.7" } }, ""),
    ...inputs);
    const save = async () => {
        try {
            const status = await callRoute("credentials", collectFields(section, vendor));
            showResult(section, true, "Saved 已保存");
            rerender(status);
        } catch (err) {
            showResult(section, false, `✗ ${err.message}`);
        } finally {
            clearSecretInputs(section); // never leave a typed secret in the page
        }
    };
    const clear = async () => {
        try {
            rerender(await callRoute("credentials/clear", { vendor }));
            showResult(section, true, "Saved keys removed 已清除");
        } catch (err) {
            showResult(section, false, `✗ ${err.message}`);
        }
    };
    section.append(
        el("div", { style: { display: "flex", gap: "6px", flexWrap: "wrap", marginTop: "8px" } },
            button("Save 保存", save, "save"), button("Clear 清除", clear, "clear"),
            button("Test cloud 测试连接", () => runTest(section, vendor, "cloud"), "test-cloud"),
            button("Test sandbox 测试沙箱", () => runTest(section, vendor, "sandbox"), "test-sandbox")),
        el("div", { "data-role": "result", style: { fontSize: "12px", marginTop: "6px", whiteSpace: "pre-wrap" } }, ""));
    return section;
}

// ---- the dialog --------------------------------------------------------------------------

export function closeCredentialsDialog() {
    document.getElementById(DIALOG_ID)?.remove();
}

/** Open (or focus) the credentials dialog. */
export async function openCredentialsDialog() {
    closeCredentialsDialog();
    const sections = {};
    const rerender = (status) => {
        credentialStatus.publish(status);
        for (const vendor of Object.keys(VENDORS)) showStatus(sections[vendor], status[vendor]);
    };
    for (const vendor of Object.keys(VENDORS)) sections[vendor] = vendorSection(vendor, rerender);

    const panel = el("div", {
        role: "dialog", "aria-label": "Cloud Outpaint keys",
        style: {
            width: "min(560px, 94vw)", maxHeight: "90vh", overflowY: "auto", padding: "14px 18px",
            background: "var(--comfy-menu-bg, #202020)", color: "var(--fg-color, #eee)",
            border: "1px solid var(--border-color, #555)", borderRadius: "8px",
            boxShadow: "0 8px 30px rgba(0,0,0,.6)", fontFamily: "sans-serif", fontSize: "14px",
        },
    },
    el("div", { style: { display: "flex", justifyContent: "space-between", alignItems: "center" } },
        el("h3", { style: { margin: "0 0 6px" } }, "Cloud Outpaint keys 云端扩图密钥"),
        button("✕", closeCredentialsDialog, "close")),
    el("p", { style: { fontSize: "12px", opacity: "0.75", margin: "0 0 10px" } },
        "Keys are stored on the ComfyUI server (user folder), never in workflows or images. " +
        "密钥保存在 ComfyUI 服务器的用户目录中，不会写入工作流或图片。"),
    sections.volc, sections.dashscope, ...dialogSections.map((build) => build({ el, field, button })));

    // A full-screen backdrop (the page's own dialogs use z-index ~1100).
    const backdrop = el("div", {
        id: DIALOG_ID,
        style: {
            position: "fixed", inset: "0", zIndex: "3000", display: "flex", alignItems: "center",
            justifyContent: "center", background: "rgba(0,0,0,.45)",
        },
        onmousedown: (e) => { if (e.target === e.currentTarget) closeCredentialsDialog(); },
        onkeydown: (e) => { if (e.key === "Escape") closeCredentialsDialog(); },
    }, panel);
    document.body.append(backdrop);
    try {
        rerender(await callRoute("credentials"));
    } catch (err) {
        for (const vendor of Object.keys(VENDORS)) showResult(sections[vendor], false, `✗ ${err.message}`);
    }
    return backdrop;
}
