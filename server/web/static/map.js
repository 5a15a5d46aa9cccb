/* The map page: the shipped outline of Kazakhstan, then every place the caller may
   see, coloured by state. No request leaves the server unless a tile URL is set. */
(function () {
  "use strict";
  var el = document.getElementById("map");
  if (!el || !window.L) { return; }
  var COLOURS = {
    site: "#3d4f5c", ok: "#1b7f3b", filling: "#d8a300", full: "#e8590c",
    alarm: "#b3261e", unknown: "#a0a8ae"
  };
  var map = L.map(el, { preferCanvas: false, zoomSnap: 0.25 });
  map.fitBounds([[40.5, 46.5], [55.5, 87.4]]);
  if (el.dataset.tiles) {
    L.tileLayer(el.dataset.tiles, { maxZoom: 18 }).addTo(map);
  }
  function json(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(url + ": " + r.status); } return r.json(); });
  }
  var country = null;
  json(el.dataset.outline).then(function (outline) {
    country = L.geoJSON(outline, {
      interactive: false,
      style: { color: "#345", weight: 1.5, fillColor: "#f4f6ef", fillOpacity: el.dataset.tiles ? 0 : 1 }
    }).addTo(map).bringToBack();
  }).then(function () { return json(el.dataset.regions); }).then(function (regions) {
    // Region outlines above the country's fill, below the places; the region the
    // filter chose is drawn bolder. The name shows as a tooltip.
    var chosen = el.dataset.region;
    var layer = L.geoJSON(regions, {
      style: function (feature) {
        var picked = chosen && feature.properties.region === chosen;
        return { color: picked ? "#1f5fbf" : "#6b7c88", weight: picked ? 2.5 : 0.8,
                 opacity: 0.9, fill: true, fillOpacity: 0, className: "region-outline" };
      },
      onEachFeature: function (feature, shape) {
        shape.bindTooltip(feature.properties.name, { sticky: true, className: "region-name" });
      }
    }).addTo(map);
    layer.bringToBack();
    country.bringToBack();
    el.dataset.regionsLoaded = String(regions.features.length);
  });
  function popup(p) {
    var box = document.createElement("div");
    var title = document.createElement("strong");
    title.textContent = p.name;
    box.appendChild(title);
    var lines = [p.place_id, p.region];
    if (p.kind === "container") {
      lines.push(p.category + " · " + p.capacity_l + " l");
      lines.push(p.fill_pct === null ? el.dataset.noReading : el.dataset.fill + ": " + p.fill_pct + "%");
      if (p.alarms.length) { lines.push(p.alarms.join(", ")); }
    }
    lines.forEach(function (text) {
      var line = document.createElement("div");
      line.textContent = text;
      box.appendChild(line);
    });
    if (p.kind === "container") {
      var a = document.createElement("a");
      a.href = "/containers/" + encodeURIComponent(p.place_id);
      a.textContent = el.dataset.open;
      box.appendChild(a);
    }
    return box;
  }
  // A stored route plan (?plan=ID): a line per vehicle, depot to depot, and its
  // stops numbered in driving order; the map fits the plan rather than every place.
  var ROUTE_COLOURS = ["#1f5fbf", "#8e24aa", "#00897b", "#c2185b", "#5d4037", "#3949ab"];
  var routeBounds = null;
  var routeLayer = null;
  var routeLoaded = el.dataset.route ? json(el.dataset.route).then(function (plan) {
    var vehicles = [];
    var layer = L.geoJSON(plan, {
      style: function (feature) {
        var v = feature.properties.vehicle;
        if (vehicles.indexOf(v) < 0) { vehicles.push(v); }
        return { color: ROUTE_COLOURS[vehicles.indexOf(v) % ROUTE_COLOURS.length], weight: 3, opacity: 0.85 };
      },
      pointToLayer: function (feature, latlng) {
        var p = feature.properties;
        if (vehicles.indexOf(p.vehicle) < 0) { vehicles.push(p.vehicle); }
        var marker = L.circleMarker(latlng, {
          radius: 8, color: "#fff", weight: 1.5,
          fillColor: ROUTE_COLOURS[vehicles.indexOf(p.vehicle) % ROUTE_COLOURS.length], fillOpacity: 1,
          className: "route-stop"
        });
        marker.bindTooltip(String(p.order), { permanent: true, direction: "center", className: "route-order" });
        marker.bindPopup(function () {
          var box = document.createElement("div");
          box.textContent = p.vehicle + " #" + p.order + ": " + p.id;
          return box;
        });
        return marker;
      },
      filter: function (feature) { return feature.properties.kind === "route" || feature.properties.kind === "stop"; }
    }).addTo(map);
    routeLayer = layer;
    var stops = plan.features.filter(function (f) { return f.properties.kind === "stop"; });
    el.dataset.routeStops = stops.map(function (f) { return f.properties.vehicle + ":" + f.properties.order + ":" + f.properties.id; }).join(" ");
    if (plan.features.length) { routeBounds = layer.getBounds(); map.fitBounds(routeBounds, { maxZoom: 15, padding: [20, 20] }); }
  }) : Promise.resolve();
  json(el.dataset.places).then(function (places) {
    // Thousands of markers draw on one shared canvas; fewer stay SVG paths.
    var canvas = places.features.length > 3000 ? L.canvas({ padding: 0.5 }) : undefined;
    var layer = L.geoJSON(places, {
      pointToLayer: function (feature, latlng) {
        var p = feature.properties;
        return L.circleMarker(latlng, {
          renderer: canvas,
          radius: p.kind === "container" ? 6 : 9,
          color: "#222", weight: 1,
          fillColor: COLOURS[p.state] || COLOURS.unknown, fillOpacity: 0.9,
          className: "place place-" + p.kind + " state-" + p.state
        });
      },
      onEachFeature: function (feature, marker) {
        marker.bindPopup(function () { return popup(feature.properties); });
      }
    }).addTo(map);
    var count = document.getElementById("map-count");
    count.textContent = count.dataset.template.replace("{count}", String(places.features.length));
    el.dataset.loaded = String(places.features.length);
    routeLoaded.then(function () {
      if (routeLayer !== null) { routeLayer.bringToFront(); }  // the plan above the places
      if (routeBounds === null && places.features.length) {
        map.fitBounds(layer.getBounds(), { maxZoom: 13, padding: [20, 20] });
      }
    });
  });
}());
