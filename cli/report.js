// backprop report: builds the page from the JSON the C++ side wrote into #report-data
// (report_json in cli/report.cpp; cli/report.hpp lists its members): the verdict, the warnings,
// the header table, then the sections with their charts (uPlot), the confusion matrix, the
// per-class table and the most confidently wrong examples (grayscale pixels on canvases). Every
// text from the data becomes a text node or an attribute value, never markup: no innerHTML.
// Nothing is fetched.
(function () {
  'use strict';
  const data = JSON.parse(document.getElementById('report-data').textContent);

  // An element with attributes and children; a string child becomes a text node.
  function el(tag, attrs, children) {
    const e = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) e.setAttribute(name, value);
    e.append(...(children || []));
    return e;
  }

  function capitalised(s) {
    return s.charAt(0).toUpperCase() + s.slice(1);
  }

  function row(cells, tag) {
    return el('tr', {}, cells.map((c) => el(tag || 'td', {}, [c])));
  }

  // ---- The header: verdict, warnings, summary table.

  function verdict(v) {
    return el('p', { id: 'verdict', class: v.warn ? 'warn' : 'good' }, [v.text]);
  }

  function warnings(list) {
    return el('ul', { id: 'warnings' }, list.map((w) => el('li', {}, [w])));
  }

  // The last epoch of each set and the final model's evaluation, in the summary's last row.
  function finalFigures(f) {
    const table = el('table', { id: 'final' }, [row(['', 'loss', f.metric], 'th')]);
    for (const r of f.rows) table.append(row([r.set, r.loss, r.metric]));
    return f.note === undefined ? [table] : [table, el('p', {}, [f.note])];
  }

  function summaryCell(r) {
    if (r.code !== undefined) return [el('code', {}, [r.code])];
    if (r.final !== undefined) return finalFigures(r.final);
    return [r.text];
  }

  function summary(rows) {
    return el('table', { id: 'summary' },
      rows.map((r) => el('tr', {}, [el('th', {}, [r.name]), el('td', {}, summaryCell(r))])));
  }

  // ---- Sections.

  function section(id, title, children) {
    return el('section', { id: id }, [el('h2', {}, [title])].concat(children));
  }

  function note(text) {
    return el('p', { class: 'note' }, [text]);
  }

  // A chart's place, filled by drawChart once the page is laid out.
  function chartFigure(c) {
    return el('figure', {
      class: 'chart',
      id: 'chart-' + c.id,
      'data-series': String(c.series.length),
      'data-points': String(c.x.length),
    }, [el('figcaption', {}, [c.title])]);
  }

  function chartsOf(name) {
    return data.charts.filter((c) => c.section === name).map(chartFigure);
  }

  function curvesSection() {
    return section('curves', 'Learning curves', [el('div', { class: 'charts' }, chartsOf('curves'))]);
  }

  function layersSection() {
    const charts = chartsOf('layers');
    return section('layers', 'Layer health', [
      note('Measured at the end of each epoch on a probe batch of training examples. Dead: ReLU ' +
           'units inactive on the whole batch; saturated: sigmoid/tanh units whose derivative ' +
           'is under 5% of its peak.'),
      el('div', { class: 'charts' },
        charts.length ? charts : [el('p', {}, ['The log holds no per-layer figures.'])]),
    ]);
  }

  // A heatmap cell, shaded by its share of the row: recall on the diagonal in blue, confusions
  // in red, stretched ×3 so small ones show.
  function confusionCell(names, t, p, count, total) {
    const share = total > 0 ? count / total : 0;
    const alpha = t === p ? share : Math.min(1, 3 * share);
    const title = 'true ' + names[t] + ', predicted ' + names[p] + ': ' + count + ' (' +
                  (100 * share).toFixed(1) + '% of ' + names[t] + ')';
    const td = el('td', { class: 'cell', title: title }, [String(count)]);
    td.style.background =
      'rgba(' + (t === p ? '31,119,180' : '214,39,40') + ',' + alpha.toFixed(3) + ')';
    if (alpha > 0.55) td.style.color = '#fff';
    return td;
  }

  // Rows: true classes; columns: predictions.
  function confusionTable(names, counts) {
    const table = el('table', { id: 'confusion' }, [
      el('caption', {}, ['rows: true class · columns: predicted']),
      el('tr', {}, [el('th')].concat(names.map((n) => el('th', { class: 'pred' }, [n])))),
    ]);
    counts.forEach((line, t) => {
      const total = line.reduce((a, b) => a + b, 0);
      table.append(el('tr', {}, [el('th', { class: 'true' }, [names[t]])].concat(
        line.map((count, p) => confusionCell(names, t, p, count, total)))));
    });
    return table;
  }

  function perClassTable(rows) {
    return el('table', { id: 'per-class' }, [row(['class', 'support', 'precision', 'recall', 'F1'], 'th')]
      .concat(rows.map((r) => row([r.class, r.support, r.precision, r.recall, r.f1]))));
  }

  function classesSection(classes) {
    return section('classes',
      capitalised(data.eval_name) + ' set: confusion matrix and per-class figures',
      [el('div', { class: 'side' },
        [confusionTable(classes.names, classes.confusion), perClassTable(classes.per_class)])]);
  }

  // A wrong example's image: base64 grayscale pixels, height×width.
  function sampleCanvas(width, height, pixels) {
    const canvas = el('canvas', { class: 'sample', width: String(width), height: String(height) });
    if (pixels === undefined) return canvas;
    const text = atob(pixels);
    const ctx = canvas.getContext('2d');
    const img = ctx.createImageData(width, height);
    for (let i = 0; i < text.length; i++) {
      const v = text.charCodeAt(i);
      img.data[4 * i] = v;
      img.data[4 * i + 1] = v;
      img.data[4 * i + 2] = v;
      img.data[4 * i + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
    canvas.dataset.drawn = '1';
    return canvas;
  }

  function wrongGrid(wrong) {
    return el('div', { id: 'wrong-grid' }, wrong.examples.map((e) => el('figure', { class: 'wrong' }, [
      sampleCanvas(wrong.width, wrong.height, e.pixels),
      el('figcaption', {}, ['true ', el('b', {}, [e.truth]), el('br'), 'predicted ',
                            el('b', {}, [e.predicted]), ' ' + e.output_rounded, el('br'),
                            el('small', {}, ['row ' + e.row])]),
    ])));
  }

  function wrongTable(examples) {
    return el('table', { id: 'wrong-table' }, [row(['row', 'true', 'predicted', 'output'], 'th')]
      .concat(examples.map((e) => row([String(e.row), e.truth, e.predicted, e.output]))));
  }

  function wrongSection(wrong) {
    return section('wrong', 'Most confidently wrong', [
      note('The ' + wrong.examples.length + ' ' + data.eval_name + ' examples the model got ' +
           'wrong with the highest output for its (wrong) choice.'),
      wrong.width > 0 ? wrongGrid(wrong) : wrongTable(wrong.examples),
    ]);
  }

  function scatterSection(charts) {
    return section('scatter', capitalised(data.eval_name) + ' set: predicted vs true',
      [el('div', { class: 'charts' }, charts)]);
  }

  // ---- Charts, drawn once their figures are in the page (uPlot sizes them from it).

  function axisNumber(v) {
    if (v === null) return '';
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(1);
    return String(+v.toPrecision(4));
  }

  function drawChart(c, fig) {
    const series = [{ label: c.xlabel }];
    for (const s of c.series) {
      const opts = { label: s.label, stroke: s.color, width: 2, spanGaps: false };
      if (s.dash) opts.dash = [6, 4];
      if (s.points) {
        opts.paths = () => null;
        opts.points = { show: true, size: 4, stroke: s.color, fill: s.color, width: 1 };
      }
      series.push(opts);
    }
    const width = Math.max(320, Math.min(560, fig.clientWidth || 480));
    const yScale = c.log ? { distr: 3 } : { auto: true };
    const xAxis = { label: c.xlabel, values: (u, vals) => vals.map(axisNumber) };
    // Epochs are whole numbers: no ticks between them.
    if (c.xlabel === 'epoch') xAxis.incrs = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 10000];
    const plot = new uPlot({
      width: width,
      height: 240,
      scales: { x: { time: false }, y: yScale },
      series: series,
      axes: [
        xAxis,
        { label: c.ylabel, size: 64, values: (u, vals) => vals.map(axisNumber) },
      ],
      legend: { live: true },
      cursor: { drag: { x: true, y: false } },
    }, [c.x].concat(c.series.map((s) => s.values)), fig);
    fig.dataset.drawn = String(plot.series.length - 1);
  }

  const header = document.querySelector('header');
  header.append(verdict(data.verdict));
  if (data.warnings.length) header.append(warnings(data.warnings));
  header.append(summary(data.summary));

  const main = document.querySelector('main');
  main.append(curvesSection(), layersSection());
  if (data.classes) {
    main.append(classesSection(data.classes));
    if (data.wrong.examples.length) main.append(wrongSection(data.wrong));
  }
  const scatter = chartsOf('scatter');
  if (scatter.length) main.append(scatterSection(scatter));

  for (const c of data.charts) drawChart(c, document.getElementById('chart-' + c.id));
  document.body.dataset.ready = '1';
})();
