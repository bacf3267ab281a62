// The gRPC VariableService: decodes requests, calls the VariableTable,
// encodes replies. No logic of its own.
#ifndef VARSCOPE_SERVER_VARIABLE_SERVICE_H_
#define VARSCOPE_SERVER_VARIABLE_SERVICE_H_

#include "server/variable_table.h"
#include "varscope/v1/variable_service.grpc.pb.h"

namespace varscope::server {

// Thread-safe. `table` must outlive the service.
class VariableServiceImpl final : public v1::VariableService::CallbackService {
 public:
  explicit VariableServiceImpl(VariableTable* table) : table_(table) {}

  grpc::ServerUnaryReactor* GetVariable(
      grpc::CallbackServerContext* context,
      const v1::GetVariableRequest* request,
      v1::GetVariableResponse* response) override;
  grpc::ServerUnaryReactor* Read(grpc::CallbackServerContext* context,
                                 const v1::ReadRequest* request,
                                 v1::ReadResponse* response) override;
  grpc::ServerUnaryReactor* Assign(grpc::CallbackServerContext* context,
                                   const v1::AssignRequest* request,
                                   v1::UpdateResponse* response) override;
  grpc::ServerUnaryReactor* AssignAdd(grpc::CallbackServerContext* context,
                                      const v1::AssignAddRequest* request,
                                      v1::UpdateResponse* response) override;
  grpc::ServerUnaryReactor* ListVariables(
      grpc::CallbackServerContext* context,
      const v1::ListVariablesRequest* request,
      v1::ListVariablesResponse* response) override;
  grpc::ServerUnaryReactor* Stat(grpc::CallbackServerContext* context,
                                 const v1::StatRequest* request,
                                 v1::VariableInfo* response) override;
  grpc::ServerUnaryReactor* Delete(grpc::CallbackServerContext* context,
                                   const v1::DeleteRequest* request,
                                   v1::DeleteResponse* response) override;

 private:
  VariableTable* const table_;
};

}  // namespace varscope::server

#endif  // VARSCOPE_SERVER_VARIABLE_SERVICE_H_
