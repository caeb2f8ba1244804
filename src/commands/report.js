// Measures the drawn charts once the page has loaded and writes the verdict into the body's
// data-rendered attribute: "ok", or every problem found. Tests read it from headless Chromium.
window.addEventListener("load", function () {
  var problems = [];
  var sections = document.querySelectorAll("section.company");
  if (sections.length === 0) problems.push("no company section");
  sections.forEach(function (section) {
    var name = section.dataset.company;
    var chart = section.querySelector("svg.requests-chart");
    var series = chart && chart.querySelector("path.series");
    if (!series) {
      problems.push(name + ": no request series");
    } else if (!(series.getBBox().width > 0)) {
      problems.push(name + ": the request series has no width");
    }
    var ceiling = chart && chart.querySelector("line.ceiling");
    if (section.dataset.burstLimit !== "") {
      if (!ceiling) problems.push(name + ": no burst ceiling line");
      else if (!(ceiling.getBBox().width > 0)) problems.push(name + ": the burst ceiling line has no width");
    }
    var marks = chart ? chart.querySelectorAll("circle.r429").length : 0;
    if (marks !== Number(section.dataset.seconds429)) {
      problems.push(name + ": " + marks + " 429 marks for " + section.dataset.seconds429 + " seconds with 429s");
    }
    var records = section.querySelector("svg.records-chart");
    var bars = records ? records.querySelectorAll("rect.bar") : [];
    if (bars.length !== Number(section.dataset.streams)) {
      problems.push(name + ": " + bars.length + " bars for " + section.dataset.streams + " streams");
    }
    // Bar lengths are proportional to records: the longest spans the plot.
    var most = 0;
    bars.forEach(function (bar) { most = Math.max(most, Number(bar.dataset.records)); });
    var plot = records ? Number(records.dataset.plotWidth) : 0;
    bars.forEach(function (bar) {
      var expected = most > 0 ? plot * Number(bar.dataset.records) / most : 0;
      var width = bar.getBBox().width;
      if (Math.abs(width - expected) > 1) {
        problems.push(name + ": bar " + bar.dataset.stream + " is " + width + " wide, not " + expected);
      }
    });
  });
  document.body.dataset.rendered = problems.length ? problems.join("; ") : "ok";
});
