// Drives the running Dagster UI in headless Chromium (Debian's package, no browser download):
// the asset graph shows every asset, validated_complaints shows its partitions and checks, and a
// materialization of one partition launched from the UI succeeds. Screenshots go to --shots.
//
//   node ui_check.mjs --url http://127.0.0.1:3000 --shots DIR --partition YYYY-MM-DD \
//        --groups a,b --assets x,y,z --checks c1,c2
import { mkdirSync } from "node:fs";
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";

const { values: opts } = parseArgs({
  options: {
    url: { type: "string" },
    shots: { type: "string" },
    partition: { type: "string" },
    groups: { type: "string" },
    assets: { type: "string" },
    checks: { type: "string" },
    chromium: { type: "string", default: "/usr/bin/chromium" },
    "timeout-ms": { type: "string", default: "180000" },
  },
});
const list = (text) => text.split(",").filter(Boolean);
const timeout = Number(opts["timeout-ms"]);
mkdirSync(opts.shots, { recursive: true });

const browser = await chromium.launch({ executablePath: opts.chromium, args: ["--no-sandbox"] });
const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
page.setDefaultTimeout(60000);

async function open(path) {
  await page.goto(opts.url + path, { waitUntil: "networkidle" });
  // The first visit shows a newsletter dialog; it would cover the page.
  const skip = page.getByRole("button", { name: "Skip" });
  if (await skip.isVisible().catch(() => false)) await skip.click();
}

async function shot(name) {
  await page.screenshot({ path: `${opts.shots}/${name}.png`, fullPage: true });
}

// The runs page's rows (newest first) whose target is raw_complaints alone, as text: the
// sensor's runs target data_layer_job. A row's text runs from its target to its creation date.
async function runsTargetingRaw() {
  await open("/runs");
  await page.getByText("Created at").first().waitFor();
  await page.waitForTimeout(1000);
  const text = await page.innerText("body");
  return text
    .slice(text.indexOf("Created at"))
    .split("\nraw_complaints\n")
    .slice(1)
    .map((row) => row.split(/\n(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d/)[0]);
}

function fail(message) {
  throw new Error(message);
}

try {
  // 1. The asset graph, group by group: every asset of the pipeline is a node.
  const shown = new Set();
  for (const group of list(opts.groups)) {
    await open(`/locations/ml_assets/asset-groups/${group}/lineage`);
    await page.waitForFunction(() => document.body.innerText.includes("Latest event"));
    // The graph draws each node as an SVG <foreignObject>: an asset counts as shown only when
    // one of them has a line reading exactly its name (not when the name is elsewhere on the
    // page, as in the sidebar or a search box). Read them once the drawing stops changing.
    let nodes = [];
    for (let tries = 0; tries < 30; tries++) {
      await page.waitForTimeout(1000);
      // innerText is an HTML property: read it from the HTML each <foreignObject> holds.
      const now = await page.$$eval("svg foreignObject", (objects) =>
        objects.map((o) => Array.from(o.children, (c) => c.innerText ?? "").join("\n")),
      );
      if (now.length && now.join("|") === nodes.join("|")) break;
      nodes = now;
    }
    const nodeLines = new Set(nodes.flatMap((t) => t.split("\n").map((line) => line.trim())));
    for (const asset of list(opts.assets)) if (nodeLines.has(asset)) shown.add(asset);
    console.log(`group ${group}: ${nodes.length} graph nodes`);
    await shot(`graph_${group}`);
  }
  const missing = list(opts.assets).filter((a) => !shown.has(a));
  if (missing.length) fail(`assets not shown in the asset graph: ${missing.join(", ")}`);
  console.log(`asset graph: all ${shown.size} assets shown`);

  // 2. validated_complaints: its partitions (the materialized day) and its checks.
  await open("/assets/validated_complaints?view=partitions");
  await page.getByText(/Materialized \(\d+\)/).first().waitFor();
  const materialized = await page.getByText(/Materialized \(\d+\)/).first().innerText();
  if (materialized.startsWith("Materialized (0)")) fail("validated_complaints shows no materialized partition");
  await shot("validated_partitions");
  console.log(`validated_complaints partitions: ${materialized}`);
  await open("/assets/validated_complaints?view=checks");
  for (const check of list(opts.checks)) await page.getByText(check, { exact: true }).first().waitFor();
  await shot("validated_checks");
  console.log(`validated_complaints checks shown: ${opts.checks}`);

  // 3. Materialize one partition of raw_complaints from the UI and see the run succeed.
  const before = (await runsTargetingRaw()).length;
  await open("/assets/raw_complaints?view=partitions");
  await page.getByRole("button", { name: /Materialize/ }).first().click();
  const dialog = page.locator('[role="dialog"]');
  const input = dialog.locator('input[type="text"]').first();
  await input.fill(opts.partition);
  await input.press("Enter");
  await dialog.getByRole("button", { name: "Launch 1 run" }).click();
  await dialog.waitFor({ state: "hidden" });
  await shot("launched");
  const deadline = Date.now() + timeout;
  let status = "";
  while (Date.now() < deadline) {
    const rows = await runsTargetingRaw();
    if (rows.length > before) {
      status = /Success|Failure|Canceled/.exec(rows[0])?.[0] ?? "";
      if (status) break;
    }
    await page.waitForTimeout(3000);
  }
  await shot("runs");
  if (status !== "Success") fail(`the run launched from the UI did not succeed (status: ${status || "none in time"})`);
  console.log(`materialization of raw_complaints[${opts.partition}] launched from the UI: Success`);
} catch (error) {
  await shot("failure").catch(() => {});
  console.error(`ui check failed: ${error.stack}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
