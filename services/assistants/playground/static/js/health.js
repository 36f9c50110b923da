// The health panel: the service's and the upstream's /health checks, and the model in use.

import { $ } from "./dom.js";

const REFRESH_MS = 10000;

function describe(check) {
  if (!check) return "unknown";
  const latency = check.latency_ms !== undefined && check.latency_ms !== null;
  const parts = [check.status];
  if (latency) parts.push(`${Math.round(check.latency_ms)} ms`);
  if (check.error) parts.push(check.error);
  return parts.join(", ");
}

export class HealthPanel {
  constructor(app) {
    this.app = app;
    this.timer = null;
  }

  start() {
    this.refresh();
    this.timer = setInterval(() => this.refresh(), REFRESH_MS);
  }

  async refresh() {
    const service = $("health-service");
    const upstream = $("health-upstream");
    try {
      const response = await fetch("/health", { cache: "no-store" });
      const body = await response.json();
      const checks = body.checks || {};
      // The upstream's check keeps the name Aurora TA reads: sovereign_playground.
      const inference = checks.sovereign_playground || checks.upstream;
      service.textContent = `service: ${body.status} (v${body.version}; database ${describe(checks.database)})`;
      upstream.textContent = `upstream: ${describe(inference)}${inference && inference.mode === "mock" ? " (mock)" : ""}`;
      service.dataset.status = body.status;
      upstream.dataset.status = inference ? inference.status : "";
    } catch (err) {
      service.textContent = `service: unreachable (${err.message})`;
      service.dataset.status = "unreachable";
    }
  }

  showModel(model) {
    $("health-model").textContent = `model: ${model || "none chosen"}`;
  }
}
