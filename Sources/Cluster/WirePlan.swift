import ControlPlane

/// The control plane's step plan, named apart from the engine's `StepPlan` it carries.
typealias WirePlan = StepPlan
