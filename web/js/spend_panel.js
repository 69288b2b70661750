// Cloud Outpaint: what runs cost. Holds the last answer of GET /cloud_outpaint/spend (prices, today's
// and the month's spend, the cache) for the cost badges, and adds a "Spend & cache" section to the
// keys dialog: the figures, "Clear cache", and the Volcengine price and the daily limit (settings the
// server keeps; values set by environment variables are shown read-only).

import { callRoute, dialogSections, latestAnswer } from "./credentials_dialog.js";

// DashScope's documented price (CNY per successful image), used until the spend route has answered,
// so the badge says what DashScope charges from the start.
export const FALLBACK_PRICES = { volc: null, dashscope: 0.18 };
const SECTION_ID = "spend";

const spendStatus = latestAnswer();
export const lastSpendStatus = spendStatus.get;
export const onSpend = spendStatus.subscribe;

/** Current prices: the server's when it answered, otherwise the documented fallback. */
export function currentPrices() {
    return spendStatus.get()?.prices ?? FALLBACK_PRICES;
}

/** GET the spend status (and tell the listeners). */
export async function refreshSpend() {
    const spend = await callRoute("spend");
    spendStatus.publish(spend);
    return spend;
}

export function formatCny(value) {
    if (value == null || !Number.isFinite(value)) return "?";
    const digits = value !== 0 && Math.abs(value) < 0.1 ? 3 : 2;
    return `¥${value.toFixed(digits)}`;
}

function formatBytes(bytes) {
    if (!bytes) return "0 B";
    const units = ["B", "KiB", "MiB", "GiB"];
    const i = Math.min(units.length - 1, Math.floor(Math.log(bytes) / Math.log(1024)));
    return `${(bytes / 1024 ** i).toFixed(i ? 1 : 0)} ${units[i]}`;
}

// ---- the dialog section ------------------------------------------------------------------

const SETTINGS = [
    { name: "volc_price_cny", key: "volc", label: "Volcengine price per request (CNY) 火山引擎单次价格（元）",
        placeholder: "not set 未设置" },
    { name: "daily_limit_cny", key: "limit", label: "Daily limit (CNY) 每日限额（元）", placeholder: "no limit 不限" },
];

function settingValue(spend, key) {
    return key === "volc" ? spend?.prices?.volc : spend?.limit_cny;
}

function showSpend(section, spend) {
    const line = (role, text) => { section.querySelector(`[data-role=${role}]`).textContent = text; };
    const requests = spend.requests_today ?? {};
    line("spend-today", `Today 今日: ${formatCny(spend.today_cny)}` +
        (spend.limit_cny != null ? ` of ${formatCny(spend.limit_cny)} limit 限额` : "") +
        ` · requests 请求: Volcengine ${requests.volc ?? 0}, DashScope ${requests.dashscope ?? 0}`);
    line("spend-month", `This month 本月: ${formatCny(spend.month_cny)}`);
    const cache = spend.cache ?? {};
    line("cache", cache.enabled === false ? "Result cache: off (CLOUD_OUTPAINT_CACHE=off) 缓存已关闭"
        : `Result cache 结果缓存: ${cache.entries ?? 0} results, ${formatBytes(cache.bytes ?? 0)}`);
    const locked = new Set(spend.locked ?? []);
    for (const { name, key } of SETTINGS) {
        const input = section.querySelector(`input[name=${name}]`);
        const value = settingValue(spend, key);
        input.value = value == null ? "" : String(value);
        input.readOnly = locked.has(name);
        input.title = locked.has(name) ? "set by an environment variable 由环境变量设置" : "";
        input.style.opacity = locked.has(name) ? "0.6" : "1";
    }
}

function showResult(section, ok, text) {
    const line = section.querySelector("[data-role=spend-result]");
    line.textContent = text;
    line.style.color = ok ? "#7c7" : "#e77";
}

/** The body of POST spend/settings: an empty field is null (price not set / no limit). */
function collectSettings(section) {
    const body = {};
    for (const { name } of SETTINGS) {
        const input = section.querySelector(`input[name=${name}]`);
        if (input.readOnly) continue;
        const text = input.value.trim();
        const value = text === "" ? null : Number(text);
        if (value !== null && !(Number.isFinite(value) && value >= 0)) {
            throw new Error(`${name}: a number ≥ 0, or empty 请输入非负数字或留空`);
        }
        body[name] = value;
    }
    return body;
}

function spendSection({ el, field, button }) {
    const section = el("fieldset", {
        "data-section": SECTION_ID,
        style: { border: "1px solid var(--border-color, #444)", borderRadius: "6px", padding: "8px 12px", margin: "0 0 10px" },
    },
    el("legend", { style: { padding: "0 6px", fontWeight: "bold" } }, "Spend & cache 费用与缓存"),
    el("div", { "data-role": "spend-today", style: { fontWeight: "bold" } }, "…"),
    el("div", { "data-role": "spend-month", style: { fontSize: "12px", opacity: "0.8" } }, ""),
    el("div", { "data-role": "cache", style: { fontSize: "12px", opacity: "0.8" } }, ""),
    ...SETTINGS.map(({ name, label, placeholder }) => field(name, label, { placeholder })));
    const save = async () => {
        try {
            const spend = await callRoute("spend/settings", collectSettings(section));
            spendStatus.publish(spend); // the badges re-price at once
            showSpend(section, spend);
            showResult(section, true, "Saved 已保存");
        } catch (err) {
            showResult(section, false, `✗ ${err.message}`);
        }
    };
    const clearCache = async () => {
        try {
            const { cleared } = await callRoute("cache/clear", {});
            showResult(section, true, `Cache cleared 缓存已清除: ${cleared} results`);
            showSpend(section, await refreshSpend());
        } catch (err) {
            showResult(section, false, `✗ ${err.message}`);
        }
    };
    section.append(
        el("div", { style: { display: "flex", gap: "6px", flexWrap: "wrap", marginTop: "8px" } },
            button("Save prices & limit 保存", save, "save-spend"), button("Clear cache 清除缓存", clearCache, "clear-cache")),
        el("div", { "data-role": "spend-result", style: { fontSize: "12px", marginTop: "6px", whiteSpace: "pre-wrap" } }, ""));
    refreshSpend().then((spend) => showSpend(section, spend),
        (err) => showResult(section, false, `✗ ${err.message}`));
    return section;
}

dialogSections.push(spendSection);
