//! The extension planner that turns the planner's logical [`PromNode`]s into [`PromExec`]s.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::error::Result;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{LogicalPlan, UserDefinedLogicalNode, UserDefinedLogicalNodeCore};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{ExtensionPlanner, PhysicalPlanner};
use hypnos_planner::PromNode;
use hypnos_schemas::SeriesSource;

use crate::exec::PromExec;

/// Plans [`PromNode`]s as [`PromExec`]s reading `source`.
#[derive(Debug)]
pub(crate) struct PromExtensionPlanner {
    pub(crate) source: Arc<dyn SeriesSource>,
    /// Samples one selection may load before the query fails.
    pub(crate) max_samples: usize,
}

#[async_trait]
impl ExtensionPlanner for PromExtensionPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session: &dyn Session,
        _planning_ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(node) = node.as_any().downcast_ref::<PromNode>() else {
            return Ok(None);
        };
        let exec = PromExec::plan(
            node.op().clone(),
            physical_inputs,
            &self.source,
            self.max_samples,
            UserDefinedLogicalNodeCore::name(node),
        )?;
        Ok(Some(Arc::new(exec)))
    }
}
