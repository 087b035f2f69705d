// backprop report: draws the charts and the wrong-image grid from the JSON the C++ side wrote
// into #report-data (cli/report.cpp). Charts are uPlot instances; images are grayscale pixels
// put on canvases. Nothing is fetched.
(function () {
  'use strict';
  const data = JSON.parse(document.getElementById('report-data').textContent);

  function axisNumber(v) {
    if (v === null) return '';
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(1);
    return String(+v.toPrecision(4));
  }

  for (const c of data.charts) {
    const el = document.getElementById('chart-' + c.id);
    if (!el) continue;
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
    const width = Math.max(320, Math.min(560, el.clientWidth || 480));
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
    }, [c.x].concat(c.series.map((s) => s.values)), el);
    el.dataset.drawn = String(plot.series.length - 1);
  }

  const images = data.images;
  for (const canvas of document.querySelectorAll('canvas.sample')) {
    const text = atob(images.pixels[+canvas.dataset.index]);
    const ctx = canvas.getContext('2d');
    const img = ctx.createImageData(images.width, images.height);
    for (let i = 0; i < text.length; i++) {
      const v = text.charCodeAt(i);
      img.data[4 * i] = v;
      img.data[4 * i + 1] = v;
      img.data[4 * i + 2] = v;
      img.data[4 * i + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
    canvas.dataset.drawn = '1';
  }
  document.body.dataset.ready = '1';
})();
