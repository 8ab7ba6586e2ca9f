/*
 * printmesh Dashboard: the widgets' names and the drawings (layer-time bars, the grid over the
 * bed). Pure functions of the sections the server sends; the view model binds them.
 */
(function (global) {
    "use strict";

    var TITLES = {
        printer: "Printer",
        job: "Job",
        times: "Times",
        layers: "Layer and height",
        layer_times: "Layer times",
        heat: "Heat",
        webcam: "Webcam and captures",
        sensors: "Sensors",
        host: "Hosts",
        shell: "Shell commands",
        mesh: "Mesh"
    };

    // Bars of the layer durations in a w x h box: [{x, y, w, h, title}]
    function layerBars(section, width, height) {
        var durations = (section && section.durations) || [];
        if (!durations.length) {
            return [];
        }
        var max = Math.max.apply(null, durations) || 1;
        var step = width / durations.length;
        var first = section.first || 1;
        return durations.map(function (d, i) {
            var h = Math.max(1, (d / max) * (height - 2));
            return {
                x: (i * step).toFixed(2),
                y: (height - h).toFixed(2),
                w: Math.max(0.5, step - 0.5).toFixed(2),
                h: h.toFixed(2),
                title: "layer " + (first + i) + ": " + d.toFixed(1) + " s"
            };
        });
    }

    // The bed outline, the allowed region and the planned points in an SVG of the given size.
    function gridPreview(capture, size) {
        var bed = capture && capture.bed;
        if (!bed || !bed.box) {
            return null;
        }
        var box = bed.box; // [x_min, x_max, y_min, y_max]
        var pad = 6;
        var scale = (size - 2 * pad) / Math.max(box[1] - box[0], box[3] - box[2]);
        function sx(x) {
            return (pad + (x - box[0]) * scale).toFixed(1);
        }
        function sy(y) {
            return (size - pad - (y - box[2]) * scale).toFixed(1); // Y grows to the back: up on screen
        }
        function rect(b) {
            return b ? {x: sx(b[0]), y: sy(b[3]), w: ((b[1] - b[0]) * scale).toFixed(1), h: ((b[3] - b[2]) * scale).toFixed(1)} : null;
        }
        var points = (capture.grid || []).map(function (p, i) {
            return {cx: sx(p[0]), cy: sy(p[1]), ok: p[2], index: i, current: capture.point === i && !!capture.capturing,
                    title: "point " + i + " (" + p[0] + ", " + p[1] + ")" + (p[2] ? "" : ": out of bounds")};
        });
        var circle = bed.circle ? {cx: sx(bed.circle[0]), cy: sy(bed.circle[1]), r: (bed.circle[2] * scale).toFixed(1)} : null;
        return {
            size: size,
            bed: rect(box),
            circle: circle,
            allowed: rect(bed.allowed),
            points: points,
            outside: points.filter(function (p) {
                return !p.ok;
            }).length
        };
    }

    global.PrintmeshWidgets = {TITLES: TITLES, layerBars: layerBars, gridPreview: gridPreview};
})(window);
