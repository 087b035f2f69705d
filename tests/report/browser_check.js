// Loads HTML pages in Debian's Chromium, headless, through playwright-core (both installed by
// scripts/setup), and answers on stdout with one JSON object per page: console errors, dialogs
// (alert, confirm, prompt) the page opened, every request it made besides its own file, and what
// the DOM and the canvases hold. The
// assertions are in tests/report/browser_test.cpp; this script only looks.
//   node browser_check.js NODE_MODULES CHROMIUM JOBS.json
// JOBS.json: [{"html": "/abs/report.html", "screenshot": "/abs/report.png"}, ...]; "ready": false
// for a page that is not a report (no need to wait for its script).
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const url = require('url');

const [modules, chromiumPath, jobsPath] = process.argv.slice(2);
const { chromium } = require(path.join(modules, 'playwright-core'));

// What a page shows, measured inside it.
function inspect() {
  const data = (() => {
    const el = document.getElementById('report-data');
    return el ? JSON.parse(el.textContent) : { charts: [] };
  })();
  const colorOf = {};
  for (const c of data.charts) colorOf['chart-' + c.id] = c.series.map((s) => s.color);
  const rgb = (hex) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  const charts = [...document.querySelectorAll('figure.chart')].map((fig) => {
    const canvas = fig.querySelector('canvas');
    const out = {
      id: fig.id,
      series: Number(fig.dataset.series),
      points: Number(fig.dataset.points),
      drawnSeries: Number(fig.dataset.drawn || -1),
      legendRows: fig.querySelectorAll('.u-legend .u-series').length,
      canvas: !!canvas,
      painted: 0,
      seriesPixels: [],
    };
    if (!canvas) return out;
    const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    const colors = (colorOf[fig.id] || []).map(rgb);
    out.seriesPixels = colors.map(() => 0);
    for (let i = 0; i < d.length; i += 4) {
      if (d[i + 3] === 0) continue;
      out.painted++;
      if (d[i + 3] < 200) continue;
      colors.forEach((c, k) => {
        if (Math.abs(d[i] - c[0]) + Math.abs(d[i + 1] - c[1]) + Math.abs(d[i + 2] - c[2]) < 40) {
          out.seriesPixels[k]++;
        }
      });
    }
    return out;
  });
  const wrong = [...document.querySelectorAll('#wrong-grid canvas.sample')].map((canvas) => {
    const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    const values = new Set();
    let opaque = 0;
    for (let i = 0; i < d.length; i += 4) {
      values.add(d[i]);
      if (d[i + 3] === 255) opaque++;
    }
    return {
      width: canvas.width,
      height: canvas.height,
      distinct: values.size,
      opaque: opaque,
      caption: canvas.parentElement.querySelector('figcaption').textContent,
    };
  });
  const cells = [...document.querySelectorAll('#confusion td.cell')];
  const texts = (selector) => [...document.querySelectorAll(selector)].map((e) => e.textContent);
  // A table's rows below its head row, each as its cells' text.
  const body = (id) => [...document.querySelectorAll('#' + id + ' tr')]
    .filter((tr) => tr.closest('table').id === id).slice(1)
    .map((tr) => [...tr.cells].map((td) => td.textContent));
  const verdict = document.getElementById('verdict');
  return {
    title: document.title,
    verdict: verdict ? verdict.textContent : '',
    verdictClass: verdict ? verdict.className : '',
    summaryRows: [...document.querySelectorAll('#summary tr')]
      .filter((tr) => tr.closest('table').id === 'summary')
      .map((tr) => tr.querySelector('th').textContent),
    finalRows: body('final'),
    finalNote: texts('#final + p').join(''),
    warnings: [...document.querySelectorAll('#warnings li')].map((li) => li.textContent),
    ready: document.body.dataset.ready === '1',
    charts: charts,
    confusionCells: cells.length,
    confusionShaded: cells.filter((td) => td.style.background !== '').length,
    confusionTotal: cells.reduce((s, td) => s + Number(td.textContent), 0),
    perClassRows: document.querySelectorAll('#per-class tr').length - 1,
    perClass: body('per-class'),
    confusionHeads: texts('#confusion th.pred'),
    wrongTable: body('wrong-table'),
    sections: [...document.querySelectorAll('main > section')].map((s) => s.id),
    images: document.querySelectorAll('img').length,
    wrong: wrong,
    boldOutsideWrongGrid: [...document.querySelectorAll('b')].filter(
      (b) => !b.closest('#wrong-grid')).length,
    scriptElements: document.querySelectorAll('script').length,
    text: document.body.innerText,
  };
}

(async () => {
  const jobs = JSON.parse(fs.readFileSync(jobsPath, 'utf8'));
  // A fresh profile for every run, removed at the end.
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'backprop-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 900 },
    deviceScaleFactor: 1,
  });
  const results = [];
  try {
    for (const job of jobs) {
      const page = await context.newPage();
      const pageUrl = url.pathToFileURL(job.html).href;
      const consoleErrors = [];
      const requests = [];
      const dialogs = [];
      page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss().catch(() => {}); });
      page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
      page.on('pageerror', (e) => consoleErrors.push(String(e)));
      page.on('request', (r) => { if (r.url() !== pageUrl) requests.push(r.url()); });
      page.on('websocket', (w) => requests.push(w.url()));
      await page.goto(pageUrl, { waitUntil: 'load' });
      // The report's script marks the body when it has drawn everything.
      if (job.ready !== false) {
        await page.waitForFunction(() => document.body.dataset.ready === '1', null,
                                   { timeout: 5000 }).catch(() => {});
      }
      await page.waitForTimeout(200);  // late requests or errors, if any
      const r = await page.evaluate(inspect);
      r.consoleErrors = consoleErrors;
      r.requests = requests;
      r.dialogs = dialogs;
      if (job.screenshot) await page.screenshot({ path: job.screenshot, fullPage: true });
      results.push(r);
      await page.close();
    }
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  process.stdout.write(JSON.stringify(results) + '\n');
})().catch((e) => {
  process.stderr.write(String(e && e.stack || e) + '\n');
  process.exit(1);
});
