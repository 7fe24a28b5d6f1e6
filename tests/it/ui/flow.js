// The operator's page in a real browser (Debian's chromium, driven by playwright-core):
// the flow an operator follows, a screenshot of each page. Steps that need the agent's
// side are asked of the Rust test over stdout/stdin ("NEED <what>" / a line back).
"use strict";
const path = require("path");
const readline = require("readline");
const { chromium } = require(process.env.PLAYWRIGHT_CORE);

const base = process.env.UI_URL;
const shots = process.env.SHOTS_DIR;
const user = process.env.UI_USER;
const password = process.env.UI_PASSWORD;

const lines = readline.createInterface({ input: process.stdin });
const queue = [];
let waiting = null;
lines.on("line", (l) => { if (waiting) { const w = waiting; waiting = null; w(l); } else queue.push(l); });
function ask(what) {
  console.log("NEED " + what);
  return new Promise((resolve) => { if (queue.length) resolve(queue.shift()); else waiting = resolve; });
}
function check(cond, what) { if (!cond) throw new Error("check failed: " + what); console.log("ok " + what); }
async function shot(page, name) { await page.screenshot({ path: path.join(shots, name + ".png"), fullPage: true }); }

(async () => {
  const context = await chromium.launchPersistentContext(process.env.USER_DATA_DIR, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    ignoreHTTPSErrors: true,
    viewport: { width: 1280, height: 800 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    const page = context.pages()[0] || (await context.newPage());
    page.setDefaultTimeout(15000);

    // Sign in.
    await page.goto(base + "/ui/");
    check(page.url().endsWith("/ui/login"), "an unsigned browser is sent to the sign-in form");
    await shot(page, "login");
    await page.fill("#username", user);
    await page.fill("#password", "not the password");
    await page.click("button[type=submit]");
    check((await page.textContent("p.error")).includes("wrong user name or password"), "a wrong password is refused");
    await page.fill("#password", password);
    await page.click("button[type=submit]");
    await page.waitForURL(base + "/ui/");
    check((await page.textContent("h1")) === "Overview", "signed in, on the overview");
    const cookie = (await context.cookies()).find((c) => c.name === "autosign_session");
    check(cookie && cookie.httpOnly && cookie.secure && cookie.sameSite === "Strict", "the session cookie is HttpOnly, Secure, SameSite=Strict");
    await shot(page, "overview");

    // Issue a token: shown once, with the csr_attributes.yaml snippet and a copy button.
    await page.click("nav >> text=Allowed to autosign");
    await page.fill("#t-certname", "web01.example.com");
    await page.fill("#t-alt", "DNS:www.example.com");
    await page.click("text=Issue token");
    const token = await page.inputValue("#token");
    check(/^[A-Za-z0-9]{43}$/.test(token), "the token is shown once");
    check((await page.inputValue("#snippet")).includes("1.2.840.113549.1.9.7: \"" + token + "\""), "with its csr_attributes.yaml snippet");
    check(await page.isVisible("button[data-copy=token]"), "and a copy button");
    await shot(page, "token-issued");
    await page.goto(base + "/ui/allowed");
    check((await page.content()).includes("web01.example.com") && !(await page.content()).includes(token), "the live token is listed, never its value");

    // An agent's rejected attempt appears on the Rejections page.
    check((await ask("rejected-attempt web01.example.com")) === "done", "the agent's attempt was refused");
    await page.click("nav >> text=Rejections");
    const row = page.locator("table.rejections tbody tr").first();
    check((await row.textContent()).includes("web01.example.com"), "the rejected attempt is the newest on Rejections");
    check((await row.textContent()).includes("token_unknown"), "with its reason");
    await page.selectOption("select[name=reason]", "token_unknown");
    await page.click("text=Filter");
    check((await page.locator("table.rejections tbody tr").count()) >= 1, "the reason filter finds it");
    await shot(page, "rejections");
    await row.locator("a").first().click();
    check((await page.textContent("h1")).includes("web01.example.com"), "a rejection links to the host's history");
    check((await page.textContent("ol.timeline")).includes("token issued"), "the history shows the token");
    await shot(page, "history");

    // Sign a pending request with alt names, after confirming.
    await page.click("nav >> text=Pending");
    const card = page.locator("article#req-alt\\.example\\.com");
    check((await card.textContent()).includes("DNS:alias.example.com"), "the pending request shows its alt names");
    await shot(page, "pending");
    await card.locator("text=Sign").last().click();
    check(page.url().endsWith("/ui/pending"), "signing without confirming does not submit (the box is required)");
    await card.locator("input[name=confirm]").check();
    await card.locator("button:has-text('Sign')").click();
    check((await page.textContent("p.notice")).includes("Signed alt.example.com"), "signed after confirming");

    // Add and remove an allow-list entry.
    await page.click("nav >> text=Allowed to autosign");
    await page.fill("#e-pattern", "*.lab.example.com");
    await page.click("text=Add entry");
    check((await page.textContent("p.notice")).includes("Added *.lab.example.com"), "an entry is added");
    await shot(page, "allowed");
    await page.click("button[aria-label='Remove *.lab.example.com']");
    check((await page.textContent("p.notice")).includes("Removed *.lab.example.com"), "and removed");
    check(!(await page.content()).includes("<code>*.lab.example.com</code>"), "and gone from the list");

    // A form posted without its CSRF token is refused.
    const forged = await page.request.post(base + "/ui/entries", { form: { pattern: "forged.example.com" }, maxRedirects: 0 });
    check(forged.status() === 403, "a form without its CSRF token is refused with 403");

    // Certificates, on a laptop and on a phone.
    await page.click("nav >> text=Certificates");
    check((await page.content()).includes("alt.example.com"), "the signed certificate is listed");
    await shot(page, "certificates");
    await page.setViewportSize({ width: 390, height: 844 });
    await page.click("nav >> text=Overview");
    await shot(page, "overview-phone");
    await page.setViewportSize({ width: 1280, height: 800 });

    // Keyboard: the skip link is the first stop and leads to the content.
    await page.keyboard.press("Tab");
    check((await page.evaluate(() => document.activeElement.className)) === "skip", "the first Tab reaches the skip link");

    // Sign out.
    await page.click("text=Sign out");
    await page.waitForURL(base + "/ui/login");
    await page.goto(base + "/ui/pending");
    check(page.url().endsWith("/ui/login"), "signed out: the pages need a new sign-in");
    console.log("DONE");
  } finally {
    lines.close();
    await context.close();
  }
})().catch((e) => { console.error(e && e.stack ? e.stack : String(e)); process.exit(1); });
