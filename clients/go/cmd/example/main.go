// Example: create a workflow and a work order, classify an error, read the status table.
//
//	go run ./cmd/example 127.0.0.1:50051
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/runstatus/runstatus/clients/go/client"
	runstatusv1 "github.com/runstatus/runstatus/clients/go/runstatus/v1"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rs, err := client.Dial(ctx, os.Args[1])
	if err != nil {
		log.Fatal(err)
	}
	defer rs.Close()

	_, err = rs.Workflows.CreateWorkflow(ctx, &runstatusv1.CreateWorkflowRequest{Workflow: &runstatusv1.Workflow{
		Id:    "go-example",
		Steps: []*runstatusv1.Step{{Id: "fetch"}, {Id: "notify"}},
		Edges: []*runstatusv1.Edge{{SourceStepId: "fetch", TargetStepId: "notify",
			Condition: runstatusv1.EdgeCondition_EDGE_CONDITION_ON_SUCCESS}},
	}})
	if err != nil {
		log.Fatal(err)
	}
	created, err := rs.WorkOrders.CreateWorkOrder(ctx, &runstatusv1.CreateWorkOrderRequest{WorkflowId: "go-example"})
	if err != nil {
		log.Fatal(err)
	}
	status := created.GetWorkOrder().GetStatus()
	fmt.Println(client.Chip(status), status) // ⚪ RUN_STATUS_PENDING

	answer, err := rs.Classifier.Classify(ctx, &runstatusv1.ClassifyRequest{Error: &runstatusv1.ErrorReport{
		Name: "runtime.Error", Language: "go", Message: "runtime error: index out of range [5] with length 2",
	}})
	if err != nil {
		log.Fatal(err)
	}
	c := answer.GetClassification()
	fmt.Println(client.Chip(c.GetStatus()), c.GetErrorType(), "aborts:", client.AbortsRun(c.GetStatus()))
}
